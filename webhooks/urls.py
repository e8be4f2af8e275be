from django.urls import path

from webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("", views.endpoint_list, name="list"),
    path("new/", views.endpoint_create, name="create"),
    path("<int:pk>/", views.endpoint_detail, name="detail"),
    path("<int:pk>/edit/", views.endpoint_edit, name="edit"),
    path("<int:pk>/remove/", views.endpoint_remove, name="remove"),
    path("<int:pk>/rotate/", views.endpoint_rotate, name="rotate"),
    path("deliveries/<int:pk>/send-again/", views.delivery_send_again, name="send_again"),
]
