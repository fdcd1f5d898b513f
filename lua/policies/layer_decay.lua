-- layer_decay: discriminative learning rates (ULMFiT, ELECTRA): each part
-- trains at params.decay ^ depth times the rate, where depth counts from
-- the top: heads and pooler 0, the top block 1, the embeddings deepest.
-- Lower layers hold general features and should move least.
local layers = require("mneme.layers")

local P = { name = "layer_decay", params = { decay = 0.8 } }

local applied   -- the decay last written, so unchanged steps write nothing

local function apply(run)
  if applied == P.params.decay then return end
  local n = layers.count_blocks(run)
  for _, layer in ipairs(run.layers) do
    layer.lr_scale = P.params.decay ^ layers.depth(layer, n)
  end
  applied = P.params.decay
end

function P.setup(run)
  applied = nil
  apply(run)
end

P.on_step = apply   -- picks up `:set policy.decay` mid-run
return P
