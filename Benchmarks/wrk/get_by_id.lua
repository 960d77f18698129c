local ids
function init(args) seed(); ids = load_list(args[1]) end
function request() return wrk.format("GET", wrk.path .. "/Users/" .. ids[math.random(#ids)]) end
