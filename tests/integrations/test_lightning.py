"""A tiny manual-optimization GAN LightningModule recorded through GandiagCallback."""
import pytest

L = pytest.importorskip("lightning")
# Lightning's own code, not ours, still uses a torch API that torch deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:DeprecationWarning", "ignore:.*LeafSpec.*:FutureWarning")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from gandiag import schema as S  # noqa: E402
from gandiag.integrations.lightning import GandiagCallback  # noqa: E402
from gandiag.monitor import MonitorConfig, MonitorUsageError  # noqa: E402
from gandiag.rundir import load_run  # noqa: E402


class TinyGAN(L.LightningModule):
    def __init__(self, run_dir, d_steps=2, automatic=False, **callback):
        super().__init__()
        self.automatic_optimization = automatic
        torch.manual_seed(0)
        self.G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        self.D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1), nn.Flatten(0))
        self.d_steps = d_steps
        self.gandiag = GandiagCallback(self.G, self.D, run_dir=run_dir,
                                      **{"config": MonitorConfig(record_every=1, flush_every=4), **callback})
        self.iterations = 0
        self.sigmoids = []

    def configure_callbacks(self):
        return [self.gandiag]

    def training_step(self, x, batch_idx):
        opt_g, opt_d = self.optimizers()
        for _ in range(self.d_steps):
            fake = self.G(torch.randn(len(x), 4))
            d_real, d_fake = self.D(x), self.D(fake.detach())
            loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            self.gandiag.discriminator_step(loss=loss_d, real_out=d_real, fake_out=d_fake, real=x)
            opt_d.step()
        fake = self.G(torch.randn(len(x), 4))
        d_gen = self.D(fake)
        loss_g = F.softplus(d_gen).neg().mean()  # minimax: per-sample |d loss / d logit| = sigmoid
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        self.gandiag.generator_step(loss=loss_g, fake_out=d_gen, fake=fake)
        opt_g.step()
        self.iterations += 1
        self.sigmoids.append(torch.sigmoid(d_gen.detach()).mean().item())

    def configure_optimizers(self):
        return torch.optim.Adam(self.G.parameters(), 1e-3), torch.optim.Adam(self.D.parameters(), 1e-3)

    def train_dataloader(self):
        data = torch.randn(256, 2) + 2
        return torch.utils.data.DataLoader(data, batch_size=32, shuffle=False)


def trainer(max_steps):
    return L.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)


def test_lightning_gan_is_recorded(tmp_path):
    model = TinyGAN(tmp_path / "run")
    trainer(max_steps=18).fit(model)  # global_step counts every optimizer step: 3 per iteration
    run = load_run(tmp_path / "run")
    m = run.metrics
    assert model.iterations == 6 and run.status == "completed"
    assert list(m.index) == list(range(model.iterations))
    assert (m[S.D_STEPS] == 2).all() and (m[S.NONFINITE] == 0).all() and (m[S.G_HAS_GRAD] == 1).all()
    assert m[S.LOGIT_GRAD_G].tolist() == pytest.approx(model.sigmoids, rel=1e-5)
    assert run.meta["config"]["source"] == "lightning"
    with pytest.raises(MonitorUsageError, match="Expected a running trainer.fit"):
        model.gandiag.generator_step(loss=torch.tensor(0.0), fake_out=torch.zeros(2))


def test_sampler_reaches_the_monitor(tmp_path):
    # Diversity on the sampler's output: a constant batch's mean is known exactly.
    fixed = torch.full((5, 2), 1.5)

    def evaluator(fake):
        assert fake.shape == (5, 2)
        return {S.DIV_RATIO: float(fake.mean())}

    model = TinyGAN(tmp_path / "run", config=MonitorConfig(record_every=1, flush_every=4, diversity_every=2),
                    evaluator=evaluator, sampler=lambda: fixed)
    trainer(max_steps=18).fit(model)
    div = load_run(tmp_path / "run").series(S.DIV_RATIO)
    assert list(div.index) == [0, 2, 4] and (div == 1.5).all()
    with pytest.raises(MonitorUsageError, match="Expected sampler= to be callable but got int"):
        GandiagCallback(nn.Linear(2, 2), nn.Linear(2, 1), run_dir=tmp_path / "x", sampler=3)


class AutomaticGAN(TinyGAN):
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), 1e-3)


def test_automatic_optimization_is_refused(tmp_path):
    model = AutomaticGAN(tmp_path / "run", automatic=True)
    with pytest.raises(MonitorUsageError, match="Expected a LightningModule with manual optimization"):
        trainer(max_steps=2).fit(model)
    assert not (tmp_path / "run").exists()


def test_wrong_arguments_fail_when_the_callback_is_built(tmp_path):
    with pytest.raises(MonitorUsageError, match="Expected discriminator= to be a torch.nn.Module but got str"):
        GandiagCallback(nn.Linear(2, 2), "D", run_dir=tmp_path / "run")
