-- wrk: favorite then unfavorite each of SLUGS in turn as the user of TOKEN (scripts/ab-pinned.sh).
local slugs = {}
local token = os.getenv("TOKEN")
for s in string.gmatch(os.getenv("SLUGS"), "[^,]+") do table.insert(slugs, s) end
local i = 0
request = function()
  i = i + 1
  local slug = slugs[(math.floor((i - 1) / 2) % #slugs) + 1]
  local method = (i % 2 == 1) and "POST" or "DELETE"
  return wrk.format(method, "/api/articles/" .. slug .. "/favorite", { ["Authorization"] = "Token " .. token })
end
