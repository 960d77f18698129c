-- POST /Users with a password (Okta's "sync password"): the connector stores its hash.
local counter, prefix = 0, nil
function init(args) seed(); prefix = args[1] .. "-t" .. tostring(tid) end
function request()
  counter = counter + 1
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. prefix .. "-" .. counter ..
    '@example.com","name":{"givenName":"Bench","familyName":"User"},"active":true,"password":"Bench-' .. counter .. '-pw"}'
  return wrk.format("POST", wrk.path .. "/Users", {["Content-Type"] = "application/scim+json"}, body)
end
