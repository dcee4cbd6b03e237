"""DistributedDataParallel on the CPU (gloo, two processes on loopback): rank 0
records the mean over ranks and is the only one to touch the file system."""
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gandiag import schema as S
from gandiag.losses import LOSSES
from gandiag.monitor import Monitor, MonitorConfig
from gandiag.rundir import load_run

WORLD = 2
STEPS = 5


def worker(rank: int, port: int, tmp: str, record_every: int) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, WORLD, is_master=False)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        G = DDP(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        D = DDP(nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0)))
        opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
        v = LOSSES["nonsaturating"]
        gen = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        # Every rank passes a run_dir; only rank 0's is used. Rank 1's own path shows it wrote nothing.
        mon = Monitor(G, D, os.path.join(tmp, f"run{rank}"), config=MonitorConfig(record_every=record_every, flush_every=2))
        raw = []
        for _ in range(STEPS):
            x = torch.randn(16, 2, generator=gen) + 2 + rank
            with torch.no_grad():
                fake = G(torch.randn(16, 4, generator=gen))
            out = D(torch.cat([x, fake]))
            r, f = out[:16], out[16:]
            loss_d = v.d_loss(r, f)
            opt_d.zero_grad()
            loss_d.backward()
            mon.discriminator_step(loss=loss_d, real_out=r, fake_out=f, real=x)
            opt_d.step()
            fake = G(torch.randn(16, 4, generator=gen))
            d_gen = D(fake)
            loss_g = v.g_loss(d_gen, d_gen.detach())
            opt_g.zero_grad()
            loss_g.backward()
            mon.generator_step(loss=loss_g, fake_out=d_gen, fake=fake)
            opt_g.step()
            raw.append({"loss_d": loss_d.item(), "loss_g": loss_g.item(), "min": out.min().item(),
                        "max": out.max().item(), "d_fake_g": torch.sigmoid(d_gen).mean().item()})
        mon.close()
        with open(os.path.join(tmp, f"raw{rank}.json"), "w") as fh:
            json.dump(raw, fh)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
@pytest.mark.parametrize("record_every", [1, 2])
def test_ddp_rank0_records_the_mean_over_ranks(tmp_path, record_every):
    # The rendezvous store binds port 0 on loopback here, in the parent, so no other
    # process can take the port between choosing it and using it.
    store = dist.TCPStore("127.0.0.1", 0, None, is_master=True, wait_for_workers=False)
    mp.start_processes(worker, args=(store.port, str(tmp_path), record_every), nprocs=WORLD, join=True, start_method="spawn")
    raw = [json.loads((tmp_path / f"raw{r}.json").read_text()) for r in range(WORLD)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw0.json", "raw1.json", "run0"]  # rank 1 wrote no run
    run = load_run(tmp_path / "run0")
    assert run.status == "completed" and run.meta["world_size"] == WORLD
    assert not (tmp_path / "run0" / ".lock").exists()
    m = run.metrics
    recorded = list(range(0, STEPS, record_every))  # every record_every-th iteration, on every rank alike
    assert list(m.index) == recorded
    assert raw[0][0]["loss_d"] != pytest.approx(raw[1][0]["loss_d"])  # the ranks did see different data
    for i in recorded:
        assert m.loc[i, S.LOSS_D] == pytest.approx((raw[0][i]["loss_d"] + raw[1][i]["loss_d"]) / 2, rel=1e-5)
        assert m.loc[i, S.LOSS_G] == pytest.approx((raw[0][i]["loss_g"] + raw[1][i]["loss_g"]) / 2, rel=1e-5)
        assert m.loc[i, S.D_FAKE_G] == pytest.approx((raw[0][i]["d_fake_g"] + raw[1][i]["d_fake_g"]) / 2, rel=1e-5)
        assert m.loc[i, S.D_OUT_MIN] == pytest.approx(min(raw[0][i]["min"], raw[1][i]["min"]), rel=1e-5)
        assert m.loc[i, S.D_OUT_MAX] == pytest.approx(max(raw[0][i]["max"], raw[1][i]["max"]), rel=1e-5)
    assert (m[S.NONFINITE] == 0).all() and (m[S.D_STEPS] == 1).all()
    assert "grad_norm_d/0" in m.columns  # layer names seen through the DDP wrapper
