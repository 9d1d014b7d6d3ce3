"""The polls admin lists the large tables and writes through the service functions."""

from __future__ import annotations

import pytest

from monolith.polls.models import Question, Vote
from tests.factories import UserFactory, VoteFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("model", ["question", "choice", "vote"])
def test_admin_changelist_and_search_render(admin_client, model):
    VoteFactory()
    assert admin_client.get(f"/admin/polls/{model}/").status_code == 200
    assert admin_client.get(f"/admin/polls/{model}/", {"q": "a"}).status_code == 200


def test_admin_adds_a_question_for_the_chosen_creator(admin_client):
    creator = UserFactory()
    response = admin_client.post(
        "/admin/polls/question/add/",
        {
            "question_text": "From the admin?",
            "pub_date_0": "2026-11-28",
            "pub_date_1": "10:00:00",
            "created_by": creator.pk,
        },
    )
    assert response.status_code == 302, response.content[:2000]
    question = Question.objects.get()
    assert (question.question_text, question.created_by_id) == (
        "From the admin?",
        creator.pk,
    )


def test_admin_cannot_add_votes_but_can_delete_them(admin_client):
    vote = VoteFactory()
    assert admin_client.get("/admin/polls/vote/add/").status_code == 403
    response = admin_client.post(
        f"/admin/polls/vote/{vote.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert Vote.objects.count() == 0
