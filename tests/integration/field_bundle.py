"""A real canary bundle for the field-loop tests (simulator, e2e): 150 digit images (0, 1, 2; 90
train, 30 dev, 30 test, gold on all), a small Keras CNN trained on them and its int8 TFLite export.
Publishing it is left to each test (service or API)."""

from training import exports, services
from training.models import ModelVersion
from training.tasks import export_model

from .training_data import add_digit_items


def trained_export(project, settings):
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "CV_BELOW_LABELS": 10}
    add_digit_items(project, 150)
    version = ModelVersion.objects.create(
        project=project,
        trainer="keras_cnn",
        hyperparameters=services.check_hyperparameters(
            "keras_cnn", {"epochs": 12, "image_size": 16, "filters": 8, "batch_size": 16, "augment": 0.0}
        ),
        policy=services.check_policy(None),
    )
    assert services.run_training(version.pk) == "ready", ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    export = exports.start_export(version, "int8", queue_task=False)
    assert export_model(export.pk) == "ready"
    export.refresh_from_db()
    return export
