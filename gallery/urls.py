from django.urls import path

from gallery import views

app_name = "gallery"
urlpatterns = [
    path("images/", views.my_images, name="my_images"),
    path("public/", views.public_images, name="public_images"),
    path("images/status/", views.image_statuses, name="image_statuses"),
    path("upload/", views.upload, name="upload"),
    path("images/<int:pk>/", views.image_detail, name="image_detail"),
    path("images/<int:pk>/visibility/", views.image_visibility, name="image_visibility"),
    path("images/<int:pk>/delete/", views.image_delete, name="image_delete"),
    path("images/<int:pk>/retry/", views.image_retry, name="image_retry"),
    path("account/tokens/", views.account_tokens, name="account_tokens"),
    path("account/tokens/revoke-all/", views.account_tokens_revoke_all, name="account_tokens_revoke_all"),
    path("account/tokens/<str:key>/revoke/", views.account_token_revoke, name="account_token_revoke"),
    path("media/images/<int:pk>/original", views.image_file, name="image_file"),
    path("media/images/<int:pk>/thumbnail", views.image_thumbnail, name="image_thumbnail"),
    path("media/regions/<int:pk>/crop", views.region_crop, name="region_crop"),
]
