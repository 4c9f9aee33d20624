"""The monitoring task (deployment/monitoring.py): takes a project id, is safe to run twice.

Registered through one import line at the end of deployment/tasks.py (Celery discovers only
``tasks`` modules). Beat runs it for every project with telemetry after each roll-up period
(``deployment.monitor_all``); the monitoring page and API queue it on demand.
"""

from celery import shared_task


@shared_task(name="deployment.monitor_project", acks_late=True)
def monitor_project(project_id: int) -> dict:
    """Test the project's new windows, open alerts, and queue its new field items."""
    from annotation.models import Project

    from . import field_queue, monitoring

    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return {"skipped": ["no such project"]}
    done = monitoring.monitor_project(project)
    done["field_queue"] = field_queue.queue_field_items(project)
    return done


@shared_task(name="deployment.monitor_all", acks_late=True)
def monitor_all() -> int:
    """Queue :func:`monitor_project` for every project whose devices reported."""
    from .models import TelemetryRecord

    ids = list(TelemetryRecord.objects.values_list("project_id", flat=True).distinct())
    for project_id in ids:
        monitor_project.delay(project_id)
    return len(ids)
