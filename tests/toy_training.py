"""A toy training budget for the arm families (seconds): enough for the machinery, not for learning.
Shared by every test folder that trains (tests/ is on the import path through its conftest.py)."""

TINY = [
    "num_iterations=1",
    "num_train_steps_per_itr=4",
    "num_initial_steps=60",
    "num_tasks_sample=1",
    "num_steps_prior=20",
    "num_extra_rl_steps_posterior=20",
    "meta_batch=2",
    "batch_size=16",
    "embedding_batch_size=8",
    "net_size=16",
    "encoder_net_size=16",
    "num_steps_per_eval=50",
    "eval_every=100",
    "family_params.num_train_tasks=2",
    "family_params.num_test_tasks=2",
    "max_path_length=10",
]
