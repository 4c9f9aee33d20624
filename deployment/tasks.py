"""Celery tasks of the deployment app: thin, named, safe to run twice."""

from celery import shared_task


@shared_task(name="deployment.rollup_and_expire", acks_late=True)
def rollup_and_expire() -> dict:
    """Roll raw telemetry up into daily aggregates and delete raw records past retention
    (deployment/rollup.py). Celery beat runs it every ROLLUP_EVERY_SECONDS (config/settings.py)."""
    from .rollup import rollup_and_expire as run

    return run()


from .monitoring_tasks import monitor_all, monitor_project  # noqa: E402, F401  (deployment/monitoring_tasks.py)
