-- guard_original: pauses the run when accuracy on the original task falls
-- more than params.max_drop below the baseline, so a person decides
-- whether to go on, reload another policy or fork from an earlier
-- checkpoint. With params.checkpoint it saves the state first (tag
-- guard-<step>). It trips once per fall: after a resume it waits until
-- accuracy has come back above the line before it can trip again.
local P = { name = "guard_original", params = { max_drop = 0.05, checkpoint = true } }

local tripped = false

function P.on_eval(run, m)
  local base = run.baseline
  if not (m and m.original and base and base.original) then return end
  local line = base.original.acc - P.params.max_drop
  if m.original.acc >= line then
    tripped = false
    return
  end
  if tripped then return end
  tripped = true
  if P.params.checkpoint then
    run:checkpoint(string.format("guard-%d", run.step))
  end
  run:pause(string.format("original accuracy %.3f is more than %.3f below the baseline %.3f",
                          m.original.acc, P.params.max_drop, base.original.acc))
end

return P
