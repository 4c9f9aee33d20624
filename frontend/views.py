from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from annotation.models import Project


@login_required
def project_list(request):
    projects = Project.objects.visible_to(request.user)
    return render(request, "frontend/project_list.html", {"projects": projects})
