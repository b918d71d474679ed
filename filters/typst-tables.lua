-- Tables in the typst (PDF) output.
--
-- * Column widths: a pipe table with a line longer than pandoc's --columns gets relative column
--   widths from its dash counts. `DataFrame.to_markdown()` pads the dashes to the widest cell,
--   not to what the column needs, so narrow text columns ("model") were squeezed until their
--   header ran into the next one. Typst's automatic columns fit the content instead.
-- * Leading list markers: pandoc's typst writer writes a cell as `[+ flip TTA]`, and typst reads
--   `+ `, `- ` or `1. ` at the start of markup as a list item. Escaping the first character keeps
--   the text literal.

local function escape_leading_marker(cell)
  local first = cell.contents[1]
  if not first or (first.t ~= "Plain" and first.t ~= "Para") then
    return
  end
  local str = first.content[1]
  if not str or str.t ~= "Str" then
    return
  end
  local text = str.text
  if text:match("^[%+%-=/]") or text:match("^%d+%.$") then
    first.content[1] = pandoc.RawInline("typst", "\\" .. text:sub(1, 1))
    if #text > 1 then
      table.insert(first.content, 2, pandoc.Str(text:sub(2)))
    end
  end
end

local function each_cell(tbl, fn)
  local function rows(list)
    for _, row in ipairs(list) do
      for _, cell in ipairs(row.cells) do
        fn(cell)
      end
    end
  end
  rows(tbl.head.rows)
  for _, body in ipairs(tbl.bodies) do
    rows(body.head)
    rows(body.body)
  end
  rows(tbl.foot.rows)
end

function Table(tbl)
  if not FORMAT:match("typst") then
    return nil
  end
  for i, spec in ipairs(tbl.colspecs) do
    tbl.colspecs[i] = {spec[1], pandoc.ColWidthDefault}
  end
  each_cell(tbl, escape_leading_marker)
  return tbl
end
