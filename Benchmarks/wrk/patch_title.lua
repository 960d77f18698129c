-- PATCH replace title with a value no other request sends, so that every request writes.
local ids, counter = nil, 0
function init(args) seed(); ids = load_list(args[1]) end
function request()
  counter = counter + 1
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title","value":"t' ..
    tostring(tid) .. "-" .. counter .. '"}]}'
  return wrk.format("PATCH", wrk.path .. "/Users/" .. ids[math.random(#ids)], {["Content-Type"] = "application/scim+json"}, body)
end
