-- gradual_unfreeze: ULMFiT's gradual unfreezing (Howard & Ruder 2018).
-- The run starts with the embeddings and every block but the top one
-- frozen; every params.every steps one more block opens from the top
-- down, and the embeddings open last. Pooler and heads stay as the
-- experiment set them (the original head stays frozen).
local layers = require("mneme.layers")

local P = { name = "gradual_unfreeze", params = { every = 200 } }

local function apply(run)
  local open = 1 + run.step // math.max(1, P.params.every)   -- blocks open
  local n = layers.count_blocks(run)
  for _, layer in ipairs(run.layers) do
    if layer.block then
      layer.frozen = layer.block < n - open
    elseif layer.kind == "embeddings" then
      layer.frozen = open <= n
    end
  end
end

P.setup = apply
P.on_step = apply
return P
