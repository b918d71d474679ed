-- A semicolon right after a cross-reference in the typst (PDF) output.
--
-- Quarto writes `@fig-a` as the typst call `#ref(<fig-a>, supplement: [Figure])`, and typst reads a
-- `;` right after an embedded call as the end of that expression and drops it: "(@fig-a; more)"
-- printed as "(Figure 1 more)". Escaping the semicolon keeps it as text. The filter runs after
-- Quarto's own (post-finalize), where the reference has become raw typst ending in `)`.

function Inlines(inlines)
  for i = 1, #inlines - 1 do
    local call, after = inlines[i], inlines[i + 1]
    if call.t == "RawInline" and call.format == "typst" and call.text:match("%)$")
        and after.t == "Str" and after.text:sub(1, 1) == ";" then
      call.text = call.text .. "\\;"
      after.text = after.text:sub(2)
    end
  end
  return inlines
end
