-- orders.lua -- the Lua functions of config/lua_orders.yaml.

-- An order (JSON text) becomes a record keyed by its customer, with its total as the typed
-- value; a line that is not an order is rejected (logged with its source and offset).
function order_total(r)
  local o = json.decode(r.value)
  if type(o) ~= "table" or not o.customer then
    error("not an order: " .. r.value:sub(1, 40))
  end
  local total = 0
  for _, item in ipairs(o.items or {}) do
    total = total + (item.qty or 1) * item.price
  end
  return {key = o.customer, num = total}
end
