"""The domain model of a labelling project, one module per concern.

Rules that must always hold are database constraints, not only Python checks, so a bulk
write or a second process cannot break them.
"""

from .data_io import DatasetExport, ItemPrediction, ProjectCounts, ProjectTuning  # noqa: F401
from .labels import (  # noqa: F401
    AdjudicationEvent,
    Annotation,
    AnnotationLabel,
    AnnotationQuerySet,
    Assignment,
    ClassChoice,
    ClassOperation,
    GoldLabel,
    GoldLabelClass,
    GuidelineNote,
    QualityReport,
    QueueEntry,
    Resolution,
    ResolutionLabel,
    ReviewRequest,
    Source,
)
from .project import (  # noqa: F401
    DataKind,
    Guideline,
    ImportBatch,
    Item,
    LabelClass,
    Membership,
    Project,
    ProjectQuerySet,
    Role,
    Split,
    TaskType,
)
from .tags import ItemTag, Tag, TagEvent  # noqa: F401
