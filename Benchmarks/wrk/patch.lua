local ids
local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}'
function init(args) seed(); ids = load_list(args[1]) end
function request()
  return wrk.format("PATCH", wrk.path .. "/Users/" .. ids[math.random(#ids)], {["Content-Type"] = "application/scim+json"}, body)
end
