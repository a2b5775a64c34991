"""PEARL learner throughput: gradient steps/s, FLOPs and GEMM fraction; collection env steps/s.

Gradient steps are timed at the reference sizes (meta-batch 16 x 256 RL rows, context 100, 3 x 300
hidden, cheetah-vel dimensions obs 20 / action 6) and at the ``-small`` config sizes. FLOPs per step are
counted by ``torch.utils.flop_counter`` on one real step; ``gemm_fraction`` is the achieved FLOP rate over
a plain GEMM's ([4096, 300] x [300, 300]) measured in the same run with the same threads. The step, the
GEMM sample and the baseline are timed in turn and reported as medians, so contention from other jobs on
a shared machine affects them alike. A
reference-style step (separate Q1/Q2, a Python loop over tasks for the posterior and the KL, three
backward passes, Q on the new actions with parameter gradients) is timed as the in-run baseline
(``speedup_vs_reference_style``, also the top-level ``ratio``). Collection is the trainer's own path
(``MetaTrainer.collect`` with the family's shipped config) on cheetah-vel and arm-dynamics.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: `pearl-robot bench learner --help` stays light
    import torch

REFERENCE = {"meta_batch": 16, "batch_size": 256, "context": 100, "hidden": 300, "encoder_hidden": 200}
SMALL = {"meta_batch": 8, "batch_size": 128, "context": 64, "hidden": 128, "encoder_hidden": 128}
OBS_DIM, ACTION_DIM, LATENT = 20, 6, 5  # cheetah-vel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's current)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=7, help="timed gradient steps at the reference size")
    parser.add_argument("--small-steps", type=int, default=40, help="timed gradient steps at the small size")
    parser.add_argument("--collect-steps", type=int, default=4000, help="env steps timed per family")
    parser.add_argument("--no-baseline", action="store_true", help="skip the reference-style step")
    parser.add_argument("--no-collect", action="store_true", help="skip the collection benchmark")
    parser.add_argument(
        "--families", default="cheetah-vel,arm-dynamics", help="families for collection (default: %(default)s)"
    )


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch(sizes: dict[str, int], context_dim: int, device: torch.device, seed: int = 0):
    import torch

    from pearl_robot.pearl.sac import TrainBatch

    g = torch.Generator().manual_seed(seed)
    t, b, n = sizes["meta_batch"], sizes["batch_size"], sizes["context"]
    batch = TrainBatch(
        obs=torch.randn(t, b, OBS_DIM, generator=g),
        actions=torch.rand(t, b, ACTION_DIM, generator=g) * 2 - 1,
        rewards=torch.randn(t, b, 1, generator=g),
        next_obs=torch.randn(t, b, OBS_DIM, generator=g),
        terminals=(torch.rand(t, b, 1, generator=g) < 0.01).float(),
        context=torch.randn(t, n, context_dim, generator=g),
    )
    return batch.to(device)


def _once(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


GEMM_ROWS, GEMM_K, GEMM_N = 4096, 300, 300
GEMM_CALLS = 8  # one timed GEMM sample: this many [4096, 300] x [300, 300] products


def _gemm(device: torch.device):
    import torch

    a = torch.randn(GEMM_ROWS, GEMM_K, device=device)
    w = torch.randn(GEMM_K, GEMM_N, device=device)

    def run() -> None:
        for _ in range(GEMM_CALLS):
            torch.mm(a, w)

    return run, 2.0 * GEMM_ROWS * GEMM_K * GEMM_N * GEMM_CALLS


def gemm_gflop_per_s(device: torch.device, samples: int = 5) -> float:
    run, flop = _gemm(device)
    run()
    return flop / float(np.median([_once(run, device) for _ in range(samples)])) / 1e9


def _agent(sizes: dict[str, int], device: torch.device):
    import torch

    from pearl_robot.pearl.agent import AgentDims, PEARLAgent
    from pearl_robot.pearl.sac import SoftActorCritic

    torch.manual_seed(0)
    dims = AgentDims(OBS_DIM, ACTION_DIM, LATENT, sizes["hidden"], sizes["encoder_hidden"])
    agent = PEARLAgent(dims).to(device)
    sac = SoftActorCritic(agent, generator=torch.Generator(device=device).manual_seed(0))
    return agent, sac


def count_flops(step_fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step_fn()
    return int(counter.get_total_flops())


def bench_gradient_step(
    sizes: dict[str, int], steps: int, device: torch.device, baseline: bool = False
) -> dict[str, Any]:
    """Our step, a plain GEMM sample and (``baseline``) the reference-style step, timed in turn ``steps``
    times; medians, so a neighbour's burst on a shared machine hits all of them alike."""
    agent, sac = _agent(sizes, device)
    batch = _batch(sizes, agent.dims.context_dim, device)
    gemm, gemm_flop = _gemm(device)
    fns = {"ours": lambda: sac.train_step(batch), "gemm": gemm}
    if baseline:
        ref = _ReferenceStyle(sizes, device)
        ref_batch = _batch(sizes, OBS_DIM + ACTION_DIM + 1, device)
        fns["reference_style"] = lambda: ref.step(ref_batch)
    for fn in fns.values():  # warm up
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(steps):
        for key, fn in fns.items():
            times[key].append(_once(fn, device))
    med = {k: float(np.median(v)) for k, v in times.items()}
    flop = count_flops(fns["ours"])
    gemm_rate = gemm_flop / med["gemm"] / 1e9
    out = {
        **sizes,
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "s_per_step": med["ours"],
        "s_per_step_min": min(times["ours"]),
        "steps_per_s": 1.0 / med["ours"],
        "gflop_per_step": flop / 1e9,
        "gflop_per_s": flop / 1e9 / med["ours"],
        "gemm_gflop_per_s": gemm_rate,
        "gemm_fraction": flop / 1e9 / med["ours"] / gemm_rate,
        "timed_steps": steps,
    }
    if baseline:
        ref_flop = count_flops(fns["reference_style"])
        out["reference_style"] = {
            "s_per_step": med["reference_style"],
            "steps_per_s": 1.0 / med["reference_style"],
            "gflop_per_step": ref_flop / 1e9,
        }
        out["speedup_vs_reference_style"] = med["reference_style"] / med["ours"]
    return out


class _ReferenceStyle:
    """The reference's structure (oyster sac.py / agent.py), for an in-run baseline: separate Q1 and Q2
    modules, the posterior and the KL in a Python loop over tasks, three backward passes, min Q on the new
    actions computed after the Q step with parameter gradients."""

    def __init__(self, sizes: dict[str, int], device: torch.device) -> None:
        import torch

        from pearl_robot.pearl.networks import MLP, TanhGaussianPolicy

        h = [sizes["hidden"]] * 3
        ctx = OBS_DIM + ACTION_DIM + 1
        self.encoder = MLP(ctx, [sizes["encoder_hidden"]] * 3, 2 * LATENT).to(device)
        self.policy = TanhGaussianPolicy(OBS_DIM + LATENT, h, ACTION_DIM).to(device)
        self.qf1 = MLP(OBS_DIM + ACTION_DIM + LATENT, h, 1).to(device)
        self.qf2 = MLP(OBS_DIM + ACTION_DIM + LATENT, h, 1).to(device)
        self.vf = MLP(OBS_DIM + LATENT, h, 1).to(device)
        self.target_vf = MLP(OBS_DIM + LATENT, h, 1).to(device)
        opt = torch.optim.Adam
        self.opts = {k: opt(getattr(self, k).parameters(), lr=3e-4) for k in ("encoder", "policy", "qf1", "qf2", "vf")}

    def step(self, batch) -> None:
        import torch
        import torch.nn.functional as F

        t, b, _ = batch.obs.shape
        params = self.encoder(batch.context)
        mus, sig2 = params[..., :LATENT], F.softplus(params[..., LATENT:])
        posts = []
        for m, s in zip(torch.unbind(mus), torch.unbind(sig2)):
            s = torch.clamp(s, min=1e-7)
            var = 1.0 / torch.sum(torch.reciprocal(s), dim=0)
            posts.append((var * torch.sum(m / s, dim=0), var))
        z_means = torch.stack([p[0] for p in posts])
        z_vars = torch.stack([p[1] for p in posts])
        z = torch.stack([torch.distributions.Normal(m, v.sqrt()).rsample() for m, v in zip(z_means, z_vars)])
        task_z = torch.cat([zz.repeat(b, 1) for zz in z], dim=0)
        obs = batch.obs.reshape(t * b, -1)
        act = batch.actions.reshape(t * b, -1)
        nobs = batch.next_obs.reshape(t * b, -1)
        new_a, mean, log_std, log_pi, _ = self.policy(torch.cat([obs, task_z.detach()], 1))
        q1 = self.qf1(torch.cat([obs, act, task_z], 1))
        q2 = self.qf2(torch.cat([obs, act, task_z], 1))
        v = self.vf(torch.cat([obs, task_z.detach()], 1))
        with torch.no_grad():
            tv = self.target_vf(torch.cat([nobs, task_z], 1))
        self.opts["encoder"].zero_grad()
        prior = torch.distributions.Normal(
            torch.zeros(LATENT, device=obs.device), torch.ones(LATENT, device=obs.device)
        )
        kl = torch.sum(torch.stack([
            torch.distributions.kl.kl_divergence(torch.distributions.Normal(m, v_.sqrt()), prior).sum()
            for m, v_ in zip(z_means, z_vars)
        ]))  # fmt: skip
        (0.1 * kl).backward(retain_graph=True)
        self.opts["qf1"].zero_grad()
        self.opts["qf2"].zero_grad()
        y = 5.0 * batch.rewards.reshape(-1, 1) + (1 - batch.terminals.reshape(-1, 1)) * 0.99 * tv
        (torch.mean((q1 - y) ** 2) + torch.mean((q2 - y) ** 2)).backward()
        for k in ("qf1", "qf2", "encoder"):
            self.opts[k].step()
        xin = torch.cat([obs, new_a, task_z.detach()], 1)
        min_q = torch.min(self.qf1(xin), self.qf2(xin))
        vf_loss = F.mse_loss(v, (min_q - log_pi).detach())
        self.opts["vf"].zero_grad()
        vf_loss.backward()
        self.opts["vf"].step()
        with torch.no_grad():
            for tp, p in zip(self.target_vf.parameters(), self.vf.parameters()):
                tp.mul_(0.995).add_(0.005 * p)
        loss = (log_pi - min_q).mean() + 1e-3 * (mean**2).mean() + 1e-3 * (log_std**2).mean()
        self.opts["policy"].zero_grad()
        loss.backward()
        self.opts["policy"].step()


def bench_collection(family_name: str, steps: int) -> dict[str, Any]:
    """Env steps/s of the trainer's own collection (``MetaTrainer.collect``: the shipped config's networks,
    numpy policy, ``num_collect_envs`` envs in lockstep, buffer writes) for a prior block and an extra-RL
    block (posterior z from the encoder buffer); the same with one env at a time; and the bare environment
    with constant actions."""
    from pearl_robot.pearl.config import load_config
    from pearl_robot.pearl.trainer import MetaTrainer

    try:
        cfg = load_config(family_name, ["family_params={num_train_tasks: 2, num_test_tasks: 1}", "tensorboard=false"])
        trainer = MetaTrainer(cfg)
    except Exception as exc:  # a family not built yet, or its dependencies missing
        return {"error": f"{type(exc).__name__}: {exc}"}
    horizon = trainer.max_path_length
    trainer.collect(0, 2 * horizon, "prior")  # warm up; gives the encoder buffer data for the extra block

    def rate(block: str) -> float:
        t0 = time.perf_counter()
        n = trainer.collect(0, steps, block, add_to_encoder=block != "extra")
        return n / (time.perf_counter() - t0)

    prior = rate("prior")
    extra = rate("extra")
    envs = trainer.cfg.num_collect_envs
    trainer.cfg.num_collect_envs = 1
    single = rate("prior")
    trainer.cfg.num_collect_envs = envs

    env = trainer.env
    action = np.zeros(trainer.layout.action_dim, np.float32)
    m, t0 = 0, time.perf_counter()
    env.reset(seed=0)
    while m < steps:
        _, _, terminated, truncated, _ = env.step(action)
        m += 1
        if terminated or truncated:
            env.reset()
    env_s = time.perf_counter() - t0
    agent = trainer.numpy_agent()
    rng = np.random.default_rng(0)
    obs = np.zeros(trainer.layout.obs_dim, np.float32)
    k, t0 = 2000, time.perf_counter()
    for _ in range(k):
        agent.act(obs, rng)
    policy_s = (time.perf_counter() - t0) / k
    return {
        "env_steps_per_s": prior,
        "extra_block_env_steps_per_s": extra,
        "single_env_steps_per_s": single,
        "env_only_steps_per_s": m / env_s,
        "policy_us_per_action": policy_s * 1e6,
        "num_collect_envs": envs,
        "hidden": trainer.cfg.net_size,
        "obs_dim": trainer.layout.obs_dim,
        "action_dim": trainer.layout.action_dim,
        "max_path_length": horizon,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pearl_robot.pearl.perf import configure_torch, resolve_device

    threads = configure_torch(args.threads)
    device = resolve_device(args.device)
    result: dict[str, Any] = {
        "threads": threads,
        "device": str(device),
        "gemm_shape": f"{GEMM_ROWS}x{GEMM_K} @ {GEMM_K}x{GEMM_N} fp32",
        "gemm_gflop_per_s": gemm_gflop_per_s(device),
    }
    result["reference"] = bench_gradient_step(REFERENCE, args.steps, device, baseline=not args.no_baseline)
    if not args.no_baseline:
        result["ratio"] = result["reference"]["speedup_vs_reference_style"]
    result["small"] = bench_gradient_step(SMALL, args.small_steps, device)
    if not args.no_collect:
        result["collection"] = {
            name: bench_collection(name, args.collect_steps) for name in args.families.split(",") if name
        }
    result["gemm_gflop_per_s_after"] = gemm_gflop_per_s(device)  # contention check: compare with the first
    return result
