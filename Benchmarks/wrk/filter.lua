local names
function init(args) seed(); names = load_list(args[1]) end
function request()
  return wrk.format("GET", wrk.path .. "/Users?filter=userName%20eq%20%22" .. names[math.random(#names)] .. "%22")
end
