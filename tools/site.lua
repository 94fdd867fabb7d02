-- pandoc filter for the offline site (tools/docsite.py).
-- Markdown cells are unwrapped from their cell Divs so that their headings make sections and the page's table of
-- contents. Links: nbdev's absolute doc links (https://<doc_host>/<baseurl>/page.html#name) become
-- relative, and links to notebooks (`01_spectral.ipynb#x`) point to their rendered page.
local prefix, nbs = '', {}

local function read_links(meta)
  local f = meta.links_file and io.open(pandoc.utils.stringify(meta.links_file))
  if f then
    local data = pandoc.json.decode(f:read('a'))
    f:close()
    prefix, nbs = data.prefix or '', data.nbs or {}
  end
  meta.links_file = nil
  return meta
end

local function fix(target)
  if prefix ~= '' and target:sub(1, #prefix) == prefix then target = target:sub(#prefix + 1) end
  local file, anchor = target:match('^([^:#?]+%.ipynb)(#?.*)$')
  if file and nbs[file:gsub('^%./', '')] then target = nbs[file:gsub('^%./', '')] .. anchor end
  if target == '' then target = 'index.html' end
  return target
end

return {
  {Meta = read_links},
  {Link = function(l) l.target = fix(l.target); return l end,
   Div = function(d) if d.classes:includes('markdown') then return d.content end end},
}
