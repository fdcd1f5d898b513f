-- warmup_cosine: linear warmup over params.warmup steps (-1: the
-- experiment's warmup_steps), then half a cosine from the experiment's
-- rate down to params.min_ratio of it at the last step.
local sched = require("mneme.schedules")

local P = { name = "warmup_cosine", params = { warmup = -1, min_ratio = 0 } }

function P.on_step(run)
  local w = sched.warmup_steps(run, P.params.warmup)
  run.lr = sched.warmup_cosine(run.step, w, run.total_steps, run.base_lr,
                               P.params.min_ratio)
end

return P
