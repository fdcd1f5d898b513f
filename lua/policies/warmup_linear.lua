-- warmup_linear: linear warmup to the experiment's rate over
-- params.warmup steps (-1: the experiment's warmup_steps), then linear
-- decay to 0 at the last step, as in BERT's fine-tuning recipe.
local sched = require("mneme.schedules")

local P = { name = "warmup_linear", params = { warmup = -1 } }

function P.on_step(run)
  local w = sched.warmup_steps(run, P.params.warmup)
  run.lr = sched.warmup_linear(run.step, w, run.total_steps, run.base_lr)
end

return P
