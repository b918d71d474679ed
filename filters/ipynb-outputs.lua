-- Quarto 1.7's ipynb format hands pandoc's ipynb writer blocks that the writer cannot store in a
-- cell output, so it drops them silently:
--   * a `fig-` chunk's image arrives as a pandoc Figure (with its "Figure N: ..." caption) inside the
--     output: the writer keeps only Para/Plain images, so the output is an empty display_data;
--   * a `tbl-` chunk's Markdown output is parsed into a pandoc Table, wrapped with its caption in a
--     plain Div: the writer keeps only raw blocks, and it ignores a Div that is not an output.
-- This filter (run at post-finalize, for ipynb only) rewrites each code cell's outputs into what the
-- writer keeps: images as `Para [Image]` (image/png), tables and captions as raw Markdown
-- (text/markdown). Captions get an anchor, so the "Figure N" links of the markdown cells still point
-- at them.

local function is_output(el)
  return el.t == "Div" and el.classes:includes("output")
end

local function markdown_of(blocks)
  local text = pandoc.write(pandoc.Pandoc(blocks), "gfm", {wrap_text = "wrap-none"})
  return (text:gsub("%s+$", ""))
end

local function output_div(blocks)
  return pandoc.Div(blocks, pandoc.Attr("", {"output", "display_data"}))
end

local function markdown_output(text)
  return output_div({pandoc.RawBlock("markdown", text)})
end

local function anchor(id)
  return id ~= "" and ('<a id="' .. id .. '"></a>') or ""
end

-- A caption's text as Markdown, with the "Figure N: " prefix Quarto numbered it with.
local function caption_markdown(blocks, id)
  return anchor(id) .. markdown_of(blocks)
end

local function figure_outputs(fig)
  local outs = pandoc.List()
  pandoc.walk_block(pandoc.Div(fig.content), {
    Image = function(img)
      img.caption = {}
      outs:insert(output_div({pandoc.Para({img})}))
    end,
  })
  if fig.caption and #fig.caption.long > 0 then
    outs:insert(markdown_output(caption_markdown(fig.caption.long, fig.identifier)))
  end
  return outs
end

-- The outputs of one cell, flattened: every block becomes an output the ipynb writer keeps.
local function flatten(blocks, outs)
  local i = 1
  while i <= #blocks do
    local b = blocks[i]
    if b.t == "Figure" then
      outs:extend(figure_outputs(b))
    elseif is_output(b) then
      local keep, tables, figures = pandoc.List(), pandoc.List(), 0
      for _, inner in ipairs(b.content) do
        if inner.t == "Figure" then
          figures = figures + 1
          outs:extend(figure_outputs(inner))
        elseif inner.t == "Table" then
          tables:insert(inner)
        else
          keep:insert(inner)
        end
      end
      if #keep > 0 or (#tables == 0 and figures == 0) then
        b.content = keep
        outs:insert(b)
      end
      for _, tbl in ipairs(tables) do
        -- a caption paragraph right after the output is the table's: show it above, as in HTML/PDF
        local nxt = blocks[i + 1]
        local cap = ""
        if nxt and (nxt.t == "Para" or nxt.t == "Plain") then
          cap = markdown_of({nxt}) .. "\n\n"
          i = i + 1
        end
        outs:insert(markdown_output(cap .. markdown_of({tbl})))
      end
    elseif b.t == "Div" then
      flatten(b.content, outs)
    else
      outs:insert(markdown_output(markdown_of({b})))
    end
    i = i + 1
  end
end

function Div(el)
  if not (el.classes:includes("cell") and el.classes:includes("code")) then
    return nil
  end
  local content = pandoc.List()
  local rest = el.content
  if #rest > 0 and rest[1].t == "CodeBlock" then
    content:insert(rest[1])
    rest = pandoc.List({table.unpack(rest, 2)})
  end
  flatten(rest, content)
  el.content = content
  return el
end
