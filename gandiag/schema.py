"""Metric names: what the monitor writes and what detectors and reports read.

One row of ``metrics.jsonl`` is one training iteration, ended by a generator
step. Discriminator metrics are averaged over the D steps of that iteration.
Per-layer gradient norms use ``grad_norm_g/<layer>`` and ``grad_norm_d/<layer>``;
diversity metrics use the ``div/`` prefix and appear only on their cadence.
"""

STEP = "step"

LOSS_G = "loss_g"
LOSS_D = "loss_d"

GRAD_NORM_G = "grad_norm_g"        # total L2 norm of G's gradient at a G step
GRAD_NORM_D = "grad_norm_d"        # total L2 norm of D's gradient at D steps (mean over the iteration)
GRAD_NORM_G_LAYER = "grad_norm_g/"  # prefix, then the layer (module) name
GRAD_NORM_D_LAYER = "grad_norm_d/"

# Per-sample mean |d loss_G / d logit|: the signal the generator gets through
# D's output. For a critic it is taken with respect to the raw score.
LOGIT_GRAD_G = "logit_grad_g"

# For d_output "logits" and "probs" these are probabilities (after the sigmoid);
# for a critic they are raw scores.
D_REAL = "d_real"        # mean D(x)
D_FAKE = "d_fake"        # mean D(G(z)) in the D step
D_FAKE_G = "d_fake_g"    # mean D(G(z)) in the G step
D_ACC = "d_acc"          # share of real and fake samples D classifies right (a critic's
                         # threshold is the midpoint of its mean real and fake scores)
D_STEPS = "d_steps"      # D updates in this iteration

SKIPPED_G = "skipped_g"  # 1 when a GradScaler skipped this G step for inf/NaN
SKIPPED_D = "skipped_d"  # D steps skipped by a GradScaler in this iteration
NONFINITE = "nonfinite"  # 1 when a loss or gradient was NaN/Inf on an unskipped step; on every row

# Implementation-mistake signals (each read by its own module in detectors/)
G_HAS_GRAD = "g_has_grad"            # 0 when G received no gradient at all
D_OUT_MIN = "d_out_min"              # min / max raw D output seen this iteration
D_OUT_MAX = "d_out_max"
D_PROB_SATURATED = "d_prob_saturated"  # share of probabilities exactly 0 or 1 (probs and logits, not critics)
D_MOVED_IN_G_STEP = "d_moved_in_g_step"  # 1 when D's weights changed with no D step between

DIV_PREFIX = "div/"
DIV_MODES_COVERED = "div/modes_covered"
DIV_MODES_TOTAL = "div/modes_total"
DIV_HQ_SHARE = "div/hq_share"
DIV_MODE_KL = "div/mode_kl"
DIV_RATIO = "div/diversity_ratio"
DIV_PRECISION = "div/precision"
DIV_RECALL = "div/recall"
DIV_DENSITY = "div/density"
DIV_COVERAGE = "div/coverage"
DIV_FRECHET = "div/frechet"
# Total-variation distance between this evaluation's histogram of high-quality
# samples over the modes (or classes) and the previous evaluation's: how much of
# G's mass moved to other modes since the last evaluation (mode hopping).
DIV_MODE_SHIFT = "div/mode_shift"

D_OUTPUTS = ("logits", "probs", "critic")
