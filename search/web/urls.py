from django.urls import path

from search.web import views

app_name = "search"
urlpatterns = [
    path("search/", views.search_page, name="search"),
    path("search/recent/clear/", views.recent_clear, name="recent_clear"),
    path("saved/", views.saved_list, name="saved_list"),
    path("saved/new/", views.saved_create, name="saved_create"),
    path("saved/<int:pk>/delete/", views.saved_delete, name="saved_delete"),
    path("duplicates/", views.duplicates_page, name="duplicates"),
]
