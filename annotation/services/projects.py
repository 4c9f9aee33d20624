import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from ..errors import DomainError
from ..models import LabelClass, Membership, Project, ProjectTuning, Role, TaskType
from ..text_rules import int32_problem, short_label_problem

# Shortcut keys offered to classes in order. U, S and Z are left out: on the labeling page they
# toggle unsure, skip and undo.
SHORTCUT_KEYS = "1234567890qwertyiopadfghjklxcvbnm"


def assign_shortcuts(names, taken=()):
    """One key per class: a one-character name keeps its own key (class '7' gets key 7),
    the others take the next free key in SHORTCUT_KEYS order; '' once keys run out."""
    used = set(taken)
    keys = []
    for name in names:
        key = name.lower() if len(name) == 1 and name.lower() in SHORTCUT_KEYS else ""
        keys.append(key if key and key not in used else "")
        used.add(keys[-1])
    free = (k for k in SHORTCUT_KEYS if k not in used)
    return [key or next(free, "") for key in keys]


@transaction.atomic
def create_project(
    *,
    slug,
    name,
    data_kind,
    classes,
    ambiguity_classes=(),
    task_type=TaskType.SINGLE_LABEL,
    overlap=1,
    consistency_fraction=0.0,
    split_fractions=(0.8, 0.1, 0.1),
    seed=0,
    created_by=None,
    shortcuts=None,
    gold_rate=None,
):
    """Create a project with its classes; the creator, if given, becomes its MLE.

    `shortcuts` maps class names to the keys their authors chose (the others get free keys);
    `gold_rate`, when given, is stored as the project's own (ProjectTuning) instead of the
    app-wide default."""
    if slugify(slug) != slug:
        raise DomainError(f"slug {slug!r} may hold only lower-case letters, digits, '-' and '_'", "slug")
    if Project.objects.filter(slug=slug).exists():
        raise DomainError(f"a project with slug {slug!r} already exists", "slug")
    names = [c.strip() for c in classes] + [c.strip() for c in ambiguity_classes]
    if not name.strip():
        raise DomainError("the name may not be empty", "name")
    problem = _name_problem(name, Project)
    if problem:
        raise DomainError(f"the name {problem}", "name")
    if not classes:
        raise DomainError("a project needs at least one class", "classes")
    if any(not n for n in names):
        raise DomainError("class names may not be empty", "classes")
    _check_class_names(names)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DomainError(f"class names repeat: {', '.join(duplicates)}", "classes")
    if overlap < 1:
        raise DomainError("overlap must be at least 1", "overlap")
    problem = int32_problem(seed, "seed")
    if problem:
        raise DomainError(problem, "seed")
    if not 0 <= consistency_fraction <= 1:
        raise DomainError("consistency fraction must lie in [0, 1]", "consistency_fraction")
    train, dev, test = split_fractions
    if min(split_fractions) < 0 or abs(train + dev + test - 1) > 1e-6:
        raise DomainError("split fractions must be non-negative and sum to 1", "split_fractions")
    if gold_rate is not None and not 0 <= gold_rate <= 1:
        raise DomainError("gold rate must lie in [0, 1]", "gold_rate")
    chosen = _check_shortcuts(shortcuts or {}, names)

    project = Project.objects.create(
        slug=slug,
        name=name,
        data_kind=data_kind,
        task_type=task_type,
        overlap=overlap,
        consistency_fraction=consistency_fraction,
        train_fraction=train,
        dev_fraction=dev,
        test_fraction=test,
        seed=seed,
        created_by=created_by,
    )
    n_plain = len(classes)
    free = iter(assign_shortcuts([n for n in names if n not in chosen], taken=set(chosen.values())))
    keys = [chosen[n] if n in chosen else next(free) for n in names]
    LabelClass.objects.bulk_create(
        LabelClass(project=project, name=n, shortcut=key, order=i, is_ambiguity=i >= n_plain)
        for i, (n, key) in enumerate(zip(names, keys, strict=True))
    )
    if gold_rate is not None:
        ProjectTuning.objects.create(project=project, gold_rate=gold_rate)
    if created_by is not None and created_by.is_authenticated:
        Membership.objects.create(user=created_by, project=project, role=Role.MLE)
    return project


# Keys the labeling page keeps for itself: unsure, skip, undo.
RESERVED_KEYS = "usz"


def _check_shortcuts(shortcuts, names):
    """The chosen keys, checked: {class name: one lower-case key}. Refuses a key for a class the
    project does not have, a key that is not one character of SHORTCUT_KEYS (U, S and Z are the
    labeling page's), and a key given twice."""
    chosen = {}
    for name, key in shortcuts.items():
        key = key.strip().lower()
        if name not in names:
            raise DomainError(f"a key is given for {name!r}, which is not one of the classes", "classes")
        if key in RESERVED_KEYS and len(key) == 1:
            raise DomainError(f"key {key!r} of {name!r} belongs to the labeling page (U, S, Z)", "classes")
        if len(key) != 1 or key not in SHORTCUT_KEYS:
            raise DomainError(f"key {key!r} of {name!r} must be one letter or digit", "classes")
        if key in chosen.values():
            raise DomainError(f"key {key!r} is given to two classes", "classes")
        chosen[name] = key
    return chosen


def _name_problem(name, model):
    """Why `name` cannot be the `name` of a `model` row (too long, invisible characters), or None."""
    max_length = model._meta.get_field("name").max_length
    if len(name) > max_length:
        return f"{name[:40]!r}… is longer than {max_length} characters"
    problem = short_label_problem(name)
    return f"{name!r} {problem}" if problem else None


def _check_class_names(names):
    for name in names:
        problem = _name_problem(name, LabelClass)
        if problem:
            raise DomainError(f"class name {problem}", "classes")


def add_classes(project, names, *, is_ambiguity=False):
    """Append classes (used by imports that may create the classes they meet)."""
    _check_class_names(names)
    existing = list(project.label_classes.order_by("order"))
    keys = assign_shortcuts(names, taken={c.shortcut for c in existing})
    start = max((c.order for c in existing), default=-1) + 1
    return LabelClass.objects.bulk_create(
        LabelClass(project=project, name=n, shortcut=key, order=start + i, is_ambiguity=is_ambiguity)
        for i, (n, key) in enumerate(zip(names, keys, strict=True))
    )


def _addable(user, by):
    """Whether `by` may learn that `user` exists: `by` is a script, staff or a superuser, or
    `user` shares a project with `by`, or belongs to no project yet (an account made for
    on-boarding). Members of other projects only stay hidden: their names (imported workers are
    `worker@project-slug`) would tell an MLE who works on what elsewhere."""
    if by is None or by.is_staff or by.is_superuser:
        return True
    theirs = Membership.objects.filter(user=user)
    return not theirs.exists() or theirs.filter(project__memberships__user=by).exists()


@transaction.atomic
def add_member(project, *, username, role, password=None, by=None):
    """Give `username` a role in the project, creating the account when `password` is given.

    There is no open sign-up: accounts come from admins (Django admin) or a project's MLE.
    `by` is the acting user: an account they may not see (`_addable`) is answered as if it did not
    exist, except that its name cannot be taken for a new account. Returns (membership, created_user).
    """
    if role not in Role.values:
        raise DomainError(f"role must be one of {', '.join(Role.values)}", "role")
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None and not _addable(user, by):
        if password:
            raise DomainError(f"the username {username!r} cannot be used for a new account; choose another", "username")
        user = None
    created = user is None
    if created:
        if not password:
            raise DomainError(
                f"there is no user {username!r} that you can add; give a password to create the account", "password"
            )
        user = User(username=username)
        try:
            User.username_validator(username)
        except ValidationError as exc:
            raise DomainError(" ".join(exc.messages), "username") from exc
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise DomainError(" ".join(exc.messages), "password") from exc
        user.set_password(password)
        user.save()
    elif password:
        raise DomainError(f"user {username!r} exists already; their password is theirs to change", "password")
    membership, fresh = Membership.objects.get_or_create(user=user, project=project, defaults={"role": role})
    if not fresh and membership.role != role:
        _keep_an_mle(project, membership, role)
        membership.role = role
        membership.save(update_fields=["role"])
    return membership, created


# --- members: the last MLE -------------------------------------------------------------------
#
# A project always keeps at least one MLE member: without one nobody could add members, upload
# data or change roles from the browser again (only an admin could). Every path that changes or
# removes a membership goes through `_keep_an_mle`, which locks the project's MLE rows first, so
# two MLEs demoting each other at the same moment run one after the other and the second is
# refused.

GENERATED_PASSWORD_BYTES = 15  # 20 URL-safe characters


def _keep_an_mle(project, membership, new_role=None):
    """Refuse to turn the project's last MLE into something else (`new_role`) or to remove it
    (`new_role` None). Call inside a transaction."""
    if membership.role != Role.MLE or new_role == Role.MLE:
        return
    mles = Membership.objects.select_for_update().filter(project=project, role=Role.MLE)
    mles = list(mles.values_list("pk", flat=True))
    if mles == [membership.pk] or not mles:
        what = "removed" if new_role is None else "given another role"
        raise DomainError(
            f"{membership.user.get_username()} is the project's last MLE and cannot be {what}; "
            "make someone else MLE first",
            "role" if new_role is not None else "username",
        )


def _membership(project, username):
    membership = Membership.objects.select_related("user").filter(project=project, user__username=username).first()
    if membership is None:
        raise DomainError(f"{username!r} is not a member of this project", "username")
    return membership


@transaction.atomic
def change_role(project, *, username, role):
    """Give a member another role; the last MLE keeps theirs."""
    if role not in Role.values:
        raise DomainError(f"role must be one of {', '.join(Role.values)}", "role")
    membership = _membership(project, username)
    _keep_an_mle(project, membership, role)
    if membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def remove_member(project, *, username):
    """Take a member out of the project. Their labels stay (they are the dataset); the account
    stays too, it may belong to other projects. The last MLE cannot be removed."""
    membership = _membership(project, username)
    _keep_an_mle(project, membership)
    membership.delete()


def create_account(project, *, username, role, by=None):
    """Create an account with a generated password and make it a member: returns (membership,
    password). The password is shown once to the MLE who made it and stored only as its hash;
    they hand it over and its owner changes it (an admin can reset a lost one)."""
    password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise DomainError(f"the username {username!r} is taken; choose another (or add that user)", "username")
    membership, _ = add_member(project, username=username, role=role, password=password, by=by)
    return membership, password
