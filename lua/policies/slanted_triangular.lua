-- slanted_triangular: ULMFiT's slanted triangular learning rate (Howard &
-- Ruder 2018): a quick linear rise over the first params.cut_frac of the
-- run to the experiment's rate, then a long linear fall to 1/params.ratio
-- of it. The policy owns run.lr from the first step.
local sched = require("mneme.schedules")

local P = { name = "slanted_triangular", params = { cut_frac = 0.1, ratio = 32 } }

local base

function P.setup(run)
  -- base_lr rather than lr: after a reload lr holds this schedule's value.
  base = run.base_lr > 0 and run.base_lr or run.lr
end

function P.on_step(run)
  if not base then P.setup(run) end
  run.lr = sched.slanted_triangular(run.step, run.total_steps, base,
                                    P.params.cut_frac, P.params.ratio)
end

return P
