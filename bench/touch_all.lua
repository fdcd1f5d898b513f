-- touch_all: the most a policy does each step — it writes every layer's
-- lr_scale and frozen flag (to their current values, so the run's numbers
-- do not change). bench/policy_cost.sh runs the default experiment with
-- it to measure what calling a policy every step costs.
local P = { name = "touch_all" }
function P.on_step(run)
  for _, layer in ipairs(run.layers) do
    layer.lr_scale = layer.lr_scale
    layer.frozen = layer.frozen
  end
end
return P
