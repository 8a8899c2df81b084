"""One data-parallel step on Dask (``fastbackprop.dask``), at a small size.

A ``LocalCluster`` of 2 single-threaded worker processes holds the data in
2 blocks; ``time_step`` times one full-batch step (the parameters sent in
one task per block, the blocks' compiled gradient sums, their reduction and
the update on the client) of the ``[100, 64, 1]`` relu network. With
``m = 256`` the step is almost all overhead (what ``docs/dask.md`` calls the
scheduler's cost and the latency); with ``m = 32768`` the blocks' compute
shows too. Skipped (``NotImplementedError`` in ``setup``) where Dask is not
installed: it is the optional extra ``dask``.
"""

import numpy as np

DIMS = [100, 64, 1]


class DaskStep:
    """Seconds per full-batch step on Dask, 2 blocks on 2 worker processes."""

    params = ([256, 32768],)
    param_names = ["m"]
    timeout = 180
    number = 1
    repeat = (5, 20, 30.0)

    def setup(self, m):
        try:
            import dask.array as da
            import distributed
        except ImportError:
            raise NotImplementedError("Dask is not installed (the optional extra 'dask')")
        from fastbackprop import Model, dask as fdask

        self.cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                                processes=True, dashboard_address=None)
        self.client = distributed.Client(self.cluster, set_as_default=False)
        fdask.warmup(self.client, dims=DIMS)
        # the data is made on the workers: nothing large travels in the graph
        X = da.random.default_rng(0).standard_normal((DIMS[0], m), chunks=(DIMS[0], m // 2))
        Y = (X[:1] + X[1:2] * X[2:3] > 0).astype(np.float64)
        model = Model(DIMS, learning_rate=0.01, n_epochs=1, seed=0)
        self.run = fdask.start_run(model, X, Y, client=self.client)
        if hasattr(self.run, "persist"):  # earlier commits persisted in a second call
            self.run.persist()
        self.epoch = 0
        self.time_step(m)  # the workers' first step: imports, workspaces

    def teardown(self, m):
        self.run.release()
        self.client.close()
        self.cluster.close()

    def time_step(self, m):
        self.epoch += 1  # every step's tasks have keys of their own
        self.run.step(self.epoch, 0)
