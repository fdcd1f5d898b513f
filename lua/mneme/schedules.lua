-- Learning-rate and lambda schedules shared by the shipped policies.
-- Every function is pure: it maps a step to a value, so a policy that is
-- reloaded mid-run picks up exactly where the schedule is.
local M = {}

-- Fraction of the way from 0 to n, clamped to [0, 1].
function M.progress(step, n)
  if n <= 0 then return 1 end
  return math.max(0, math.min(1, step / n))
end

-- Straight line from a to b as t goes from 0 to 1.
function M.lerp(a, b, t)
  return a + (b - a) * t
end

-- The warmup length a policy uses: its own param when set (>= 0),
-- otherwise the experiment's warmup_steps.
function M.warmup_steps(run, param)
  if param and param >= 0 then return param end
  return run.warmup_steps
end

-- Linear warmup to base over w steps, then linear decay to 0 at total
-- (the schedule of BERT's and Hugging Face's linear scheduler).
function M.warmup_linear(step, w, total, base)
  if step < w then return base * step / w end
  return base * math.max(0, (total - step) / math.max(1, total - w))
end

-- Linear warmup, then half a cosine down to min_ratio * base.
function M.warmup_cosine(step, w, total, base, min_ratio)
  if step < w then return base * step / w end
  local t = M.progress(step - w, total - w)
  local f = 0.5 * (1 + math.cos(math.pi * t))
  return base * (min_ratio + (1 - min_ratio) * f)
end

-- ULMFiT's slanted triangular rate (Howard & Ruder 2018, eq. 3): a short
-- linear rise over cut_frac of the run, a long linear fall, with the
-- lowest rate base / ratio.
function M.slanted_triangular(step, total, base, cut_frac, ratio)
  local cut = math.max(1, math.floor(total * cut_frac))
  local p
  if step < cut then
    p = step / cut
  else
    p = 1 - (step - cut) / math.max(1, cut * (1 / cut_frac - 1))
  end
  p = math.max(0, p)
  return base * (1 + p * (ratio - 1)) / ratio
end

return M
