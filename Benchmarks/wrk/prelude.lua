-- Put before every scenario: a thread id for seeding and unique names, and list loading.
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function load_list(path)
  local list = {}
  for line in io.lines(path) do list[#list + 1] = line end
  return list
end
function seed() math.randomseed(os.time() * 1000 + (tid or 0)) end
