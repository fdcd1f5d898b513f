-- ewc_anneal: moves the EWC penalty's lambda in a straight line from
-- params.start to params.stop over params.over steps (0: the whole run),
-- then holds it. Strong early protection that relaxes lets the new task
-- settle before the pull toward the base weights weakens, or the reverse
-- with start < stop.
local sched = require("mneme.schedules")

local P = { name = "ewc_anneal", params = { start = 1e6, stop = 0, over = 0 } }

local function apply(run)
  local over = P.params.over > 0 and P.params.over or run.total_steps
  run.ewc_lambda = sched.lerp(P.params.start, P.params.stop,
                              sched.progress(run.step, over))
end

P.setup = apply
P.on_step = apply
return P
