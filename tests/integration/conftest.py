"""Fixtures the integration tests of several modules share."""

import pytest

from .training_data import add_digit_items


@pytest.fixture
def al_project(project):
    """For active-learning cycles: 60 gold-labelled digits (0-2) and 90 unlabelled ones, of which
    54 are in the train split (the pool)."""
    from annotation.services import labeling

    add_digit_items(project, 60)
    add_digit_items(project, 90, gold=False, start=60)
    labeling.refresh_queue_state(project)
    return project
