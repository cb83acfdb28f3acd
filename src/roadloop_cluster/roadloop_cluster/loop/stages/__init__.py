"""The loop's stages, one module each; every stage is `fn(ctx: StageContext, round) -> StageOutcome`.

    setup ─► hub ─► r1-record ─► r1-ship ─► r1-dataset ─► r1-train ─► r1-export ─► r1-gate ─► r1-deploy ─► r1-drive
                └─► r2-fleet ─► r2-corrections ─► r2-ship ─► r2-dataset ─► r2-train ─► r2-export ─► r2-gate ─► ...

Each calls the parts through their command lines (`ctx.roadloop(...)`, logged to
OUT/logs/<stage>.log, so a failed stage can be re-run by hand), reads their outputs through
`loop.adapters`, and writes its numbers into the run's summary. The order is `loop.run.plan`.
"""
