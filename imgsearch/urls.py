from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from gallery import api as gallery_api
from gallery import views as gallery_views
from imgsearch import health
from imgsearch.api import ObtainTokenApi, TokenDetailApi, TokenListApi
from search.web import api as search_api

api_patterns = (
    [
        path("auth/token/", ObtainTokenApi.as_view(), name="token"),
        path("auth/tokens/", TokenListApi.as_view(), name="tokens"),
        path("auth/tokens/<str:key>/", TokenDetailApi.as_view(), name="token_detail"),
        path("images/", gallery_api.ImageListCreateApi.as_view(), name="images"),
        path("images/<int:pk>/", gallery_api.ImageDetailApi.as_view(), name="image"),
        path("images/<int:pk>/retry/", gallery_api.ImageRetryApi.as_view(), name="image_retry"),
        path("images/<int:pk>/tags/", gallery_api.ImageTagsApi.as_view(), name="image_tags"),
        path("images/<int:pk>/file/", gallery_api.ImageFileApi.as_view(), name="image_file"),
        path("trash/", gallery_api.TrashApi.as_view(), name="trash"),
        path("trash/<int:pk>/", gallery_api.TrashedImageApi.as_view(), name="trashed_image"),
        path("trash/<int:pk>/restore/", gallery_api.TrashedImageRestoreApi.as_view(), name="trashed_image_restore"),
        path("images/<int:pk>/thumbnail/", gallery_api.ImageThumbnailApi.as_view(), name="image_thumbnail"),
        path("search/", search_api.SearchApi.as_view(), name="search"),
        path("duplicates/", search_api.DuplicatesApi.as_view(), name="duplicates"),
        path("searches/recent/", search_api.RecentSearchesApi.as_view(), name="recent_searches"),
        path("searches/saved/", search_api.SavedSearchesApi.as_view(), name="saved_searches"),
        path("searches/saved/<int:pk>/", search_api.SavedSearchApi.as_view(), name="saved_search"),
        path("schema/", SpectacularAPIView.as_view(), name="schema"),
        # The split view serves Swagger UI's start-up script as a file: no inline script (CSP). Swagger
        # UI adds a <style> element of its own, so this one page allows inline styles.
        path(
            "docs/",
            csp_update({"style-src": [UNSAFE_INLINE]})(SpectacularSwaggerSplitView.as_view(url_name="api:schema")),
            name="docs",
        ),
    ],
    "api",
)

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", gallery_views.home, name="home"),
    path("signup/", gallery_views.signup, name="signup"),
    path("accounts/password_reset/done/", gallery_views.password_reset_done, name="password_reset_done"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("", include("gallery.urls")),
    path("", include("search.web.urls")),
]

# Unmatched URLs under /api/ answer JSON, like every other API error.
handler404 = "imgsearch.api.not_found"
