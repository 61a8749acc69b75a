from django.urls import path

from search import views

app_name = "search"
urlpatterns = [
    path("search/", views.search_page, name="search"),
    path("duplicates/", views.duplicates_page, name="duplicates"),
]
