-- stop_at_crossover: ends the run at the first evaluation that finds a
-- crossover (the new task's gain since the previous evaluation is smaller
-- than the original task's loss, both smoothed; see mneme(1)), once at
-- least params.after steps have run: the point where more training buys
-- the new task at the original's expense.
local P = { name = "stop_at_crossover", params = { after = 0 } }

local stopped = false

function P.on_eval(run, m)
  if stopped or not run.crossover_step or run.step < P.params.after then return end
  stopped = true
  run:stop(string.format("crossover at step %d", run.crossover_step))
end

return P
