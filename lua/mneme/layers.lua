-- Helpers over run.layers: the transformer blocks and each part's depth
-- from the top of the model, as the built-in layer_decay counts it.
local M = {}

-- The number of transformer blocks (layer.0 .. layer.N-1).
function M.count_blocks(run)
  local n = 0
  for _, layer in ipairs(run.layers) do
    if layer.block then n = n + 1 end
  end
  return n
end

-- Heads and pooler are depth 0, the top block 1, layer.0 N and the
-- embeddings N + 1.
function M.depth(layer, n_blocks)
  if layer.block then return n_blocks - layer.block end
  if layer.kind == "embeddings" then return n_blocks + 1 end
  return 0
end

return M
