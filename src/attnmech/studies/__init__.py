"""Studies built on the core: the paper's reproduction, the authors' replay, the optimiser-bias
table, real text, sweeps and the demo."""
