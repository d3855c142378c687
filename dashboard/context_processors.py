"""Template context for every page: the signed-in user's dashboard role."""

from django.utils.functional import SimpleLazyObject

from sagas.filters import is_operator


def roles(request):
    user = getattr(request, "user", None)
    return {"is_operator": SimpleLazyObject(lambda: is_operator(user))}
