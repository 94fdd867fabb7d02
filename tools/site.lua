-- pandoc filter for the offline site (tools/docsite.py).
-- * Links: nbdev's absolute doc links (https://<doc_host>/<baseurl>/page.html#name) become relative; links to
--   notebooks (`01_spectral.ipynb#x`) point to their rendered page; nbdev's links to private names (`_helper`), which
--   have no API reference to land on, become plain code.
-- * Anchors: pandoc reads each notebook cell on its own, so a section "## Benchmark" and the API reference of
--   `benchmark` both get the id `benchmark`. The API reference keeps it (nbdev's doc links point there); the section
--   gets `benchmark-section`.
-- * Markdown cells are unwrapped from their cell Divs so that their headings make sections and the table of contents.
local prefix, nbs, up = '', {}, ''

local function read_links(meta)
  local f = meta.links_file and io.open(pandoc.utils.stringify(meta.links_file))
  if f then
    local data = pandoc.json.decode(f:read('a'))
    f:close()
    prefix, nbs = data.prefix or '', data.nbs or {}
  end
  up = meta.page_up and pandoc.utils.stringify(meta.page_up) or ''
  meta.links_file, meta.page_up = nil, nil
  return meta
end

-- Targets relative to the site root (nbdev's doc links, notebook paths) are made relative to the page's folder.
local function fix(target)
  local rooted = false
  if prefix ~= '' and target:sub(1, #prefix) == prefix then target = target:sub(#prefix + 1); rooted = true end
  local file, anchor = target:match('^([^:#?]+%.ipynb)(#?.*)$')
  if file and nbs[file:gsub('^%./', '')] then target = nbs[file:gsub('^%./', '')] .. anchor; rooted = true end
  if rooted and target == '' then target = 'index.html' end
  if rooted and target:sub(1, 1) ~= '#' then target = up .. target end
  return target
end

local function link(l)
  local internal = prefix ~= '' and l.target:sub(1, #prefix) == prefix
  l.target = fix(l.target)
  if internal and l.target:match('#_') then return l.content end
  return l
end

local function unique_ids(doc)
  local api = {}
  -- API headings get nbdev's anchor, the lower-cased name (`iresnetblock.inverse`: pandoc's own id drops the dot)
  doc = doc:walk({Div = function(d)
    if d.attributes['api'] then
      return d:walk({Header = function(h)
        h.identifier = (pandoc.utils.stringify(h.content):lower():gsub('%s+', '-'))
        api[h.identifier] = true
        return h
      end})
    end
  end})
  return doc:walk({Div = function(d)
    if d.attributes['api'] then return nil end
    return d:walk({Header = function(h)
      if api[h.identifier] then h.identifier = h.identifier .. '-section'; return h end
    end})
  end})
end

return {
  {Meta = read_links},
  {Link = link},
  {Pandoc = unique_ids},
  {Div = function(d) if d.classes:includes('markdown') then return d.content end end},
}
