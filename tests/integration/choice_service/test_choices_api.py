"""/api/choices/ on the choice service: the monolith's contract, on its own database."""

from __future__ import annotations

import pytest

from extracted.choice_service.choices.models import Choice
from strangler.dualwrite.modes import set_mode
from tests.integration.servicehelpers import assert_error, bearer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CREATOR, STRANGER = 7, 8
NOT_CREATOR = "Only the question's creator can change its choices."


def texts() -> list[tuple[int, str]]:
    return list(Choice.objects.order_by("id").values_list("question_id", "choice_text"))


def test_creator_adds_a_choice(api_client, make_question):
    make_question(1, CREATOR)
    response = api_client.post(
        "/api/choices/",
        {"question": 1, "choice_text": "Yes"},
        format="json",
        **bearer(CREATOR),
    )
    assert response.status_code == 201, response.content
    choice = Choice.objects.get()
    assert response.json() == {"id": choice.pk, "question": 1, "choice_text": "Yes"}


def test_someone_else_cannot_add_a_choice(api_client, make_question):
    make_question(1, CREATOR)
    response = api_client.post(
        "/api/choices/",
        {"question": 1, "choice_text": "Yes"},
        format="json",
        **bearer(STRANGER),
    )
    error = assert_error(response, 403, "permission_denied")
    assert error["message"] == NOT_CREATOR
    assert texts() == []


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"question": 99, "choice_text": "x"}, "question", 'Invalid pk "99" - object does not exist.'),
        ({"question": "1", "choice_text": "x"}, "question", "Incorrect type. Expected pk value, received str."),
        ({"question": True, "choice_text": "x"}, "question", "Incorrect type. Expected pk value, received bool."),
        ({"choice_text": "x"}, "question", "This field is required."),
        ({"question": 1}, "choice_text", "This field is required."),
        ({"question": 1, "choice_text": 5}, "choice_text", "Not a valid string."),
        ({"question": 1, "choice_text": ""}, "choice_text", "This field may not be blank."),
        ({"question": 1, "choice_text": "   "}, "choice_text", "This field may not be blank."),
        ({"question": 1, "choice_text": None}, "choice_text", "This field may not be null."),
        ({"question": 1, "choice_text": "x" * 201}, "choice_text", "Ensure this field has no more than 200 characters."),
    ],
)  # fmt: skip
def test_bad_input_is_400_naming_the_field_and_writes_nothing(
    api_client, make_question, body, field, message
):
    make_question(1, CREATOR)
    response = api_client.post("/api/choices/", body, format="json", **bearer(CREATOR))
    error = assert_error(response, 400, "invalid", field=field)
    assert error["fields"][field] == [message]
    assert texts() == []


def test_text_of_exactly_200_characters_is_accepted(api_client, make_question):
    make_question(1, CREATOR)
    response = api_client.post(
        "/api/choices/",
        {"question": 1, "choice_text": "x" * 200},
        format="json",
        **bearer(CREATOR),
    )
    assert response.status_code == 201
    assert texts() == [(1, "x" * 200)]


def test_malformed_json_is_400_parse_error(api_client, make_question):
    make_question(1, CREATOR)
    response = api_client.post(
        "/api/choices/", "{", content_type="application/json", **bearer(CREATOR)
    )
    assert_error(response, 400, "parse_error")
    assert texts() == []


def test_list_filters_by_question_in_id_order(api_client, make_question, make_choice):
    first = make_choice(1, "a")
    make_choice(2, "b")
    third = make_choice(1, "c")
    body = api_client.get("/api/choices/?question=1").json()
    assert body["count"] == 2
    assert [c["id"] for c in body["results"]] == [first.pk, third.pk]
    assert api_client.get("/api/choices/?question=5").json()["results"] == []
    assert api_client.get("/api/choices/").json()["count"] == 3


@pytest.mark.parametrize("value", ["x", "", "2.0"])
def test_non_integer_question_filter_is_400(api_client, value):
    response = api_client.get(f"/api/choices/?question={value}")
    assert_error(response, 400, "invalid", field="question")


def test_list_pages_with_absolute_links(api_client, make_choice):
    for _ in range(3):
        make_choice(1)
    body = api_client.get("/api/choices/?page_size=2").json()
    assert body["next"] == "http://testserver/api/choices/?page=2&page_size=2"
    assert body["previous"] is None
    assert_error(api_client.get("/api/choices/?page=3&page_size=2"), 404, "not_found")


def test_retrieve_and_unknown_id(api_client, make_choice):
    choice = make_choice(1, "a")
    assert api_client.get(f"/api/choices/{choice.pk}/").json() == {
        "id": choice.pk,
        "question": 1,
        "choice_text": "a",
    }
    assert_error(api_client.get("/api/choices/424242/"), 404, "not_found")


@pytest.mark.parametrize("method", ["put", "patch"])
def test_creator_updates_the_text(api_client, make_question, make_choice, method):
    make_question(1, CREATOR)
    choice = make_choice(1, "old")
    response = getattr(api_client, method)(
        f"/api/choices/{choice.pk}/",
        {"question": 1, "choice_text": "new"},
        format="json",
        **bearer(CREATOR),
    )
    assert response.status_code == 200, response.content
    assert response.json()["choice_text"] == "new"
    assert texts() == [(1, "new")]


def test_patch_may_omit_the_question(api_client, make_question, make_choice):
    make_question(1, CREATOR)
    choice = make_choice(1, "old")
    response = api_client.patch(
        f"/api/choices/{choice.pk}/",
        {"choice_text": "new"},
        format="json",
        **bearer(CREATOR),
    )
    assert response.status_code == 200
    assert texts() == [(1, "new")]


def test_put_needs_every_field(api_client, make_question, make_choice):
    make_question(1, CREATOR)
    choice = make_choice(1, "old")
    response = api_client.put(
        f"/api/choices/{choice.pk}/",
        {"choice_text": "new"},
        format="json",
        **bearer(CREATOR),
    )
    assert_error(response, 400, "invalid", field="question")
    assert texts() == [(1, "old")]


def test_moving_a_choice_to_another_question_is_400(
    api_client, make_question, make_choice
):
    make_question(1, CREATOR)
    make_question(2, CREATOR)
    choice = make_choice(1, "old")
    response = api_client.patch(
        f"/api/choices/{choice.pk}/",
        {"question": 2, "choice_text": "new"},
        format="json",
        **bearer(CREATOR),
    )
    error = assert_error(response, 400, "invalid", field="question")
    assert error["fields"]["question"] == ["A choice cannot move to another question."]
    assert texts() == [(1, "old")]


def test_someone_else_cannot_update_or_delete(api_client, make_question, make_choice):
    make_question(1, CREATOR)
    choice = make_choice(1, "old")
    url = f"/api/choices/{choice.pk}/"
    for response in (
        api_client.patch(
            url, {"choice_text": "new"}, format="json", **bearer(STRANGER)
        ),
        api_client.delete(url, **bearer(STRANGER)),
    ):
        assert (
            assert_error(response, 403, "permission_denied")["message"] == NOT_CREATOR
        )
    assert texts() == [(1, "old")]


def test_updates_and_deletes_need_a_token(api_client, make_question, make_choice):
    make_question(1, CREATOR)
    choice = make_choice(1, "old")
    url = f"/api/choices/{choice.pk}/"
    assert_error(
        api_client.patch(url, {"choice_text": "n"}, format="json"),
        401,
        "not_authenticated",
    )
    assert_error(api_client.delete(url), 401, "not_authenticated")
    assert texts() == [(1, "old")]


def test_creator_deletes_a_choice(api_client, make_question, make_choice):
    make_question(1, CREATOR)
    choice = make_choice(1, "old")
    response = api_client.delete(f"/api/choices/{choice.pk}/", **bearer(CREATOR))
    assert response.status_code == 204
    assert texts() == []


def test_forged_token_is_401_and_writes_nothing(api_client, make_question):
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.integration.servicehelpers import claims, sign

    make_question(1, CREATOR)
    forged = sign(claims(CREATOR), key=rsa.generate_private_key(65537, 2048))
    response = api_client.post(
        "/api/choices/",
        {"question": 1, "choice_text": "x"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {forged}",
    )
    assert_error(response, 401, "invalid_token")
    assert texts() == []


def test_list_takes_two_queries(api_client, make_choice, django_assert_num_queries):
    for _ in range(25):
        make_choice(1)
    with django_assert_num_queries(2):
        response = api_client.get("/api/choices/?question=1&page_size=25")
    assert len(response.json()["results"]) == 25


def test_create_takes_a_fixed_number_of_queries(
    api_client, make_question, django_assert_num_queries
):
    make_question(1, CREATOR)
    headers = bearer(CREATOR)
    set_mode("choice", "forward")
    # A steady-state request: modes are cached for a second and the outbox insert is
    # prepared once per connection (strangler/dualwrite/outbox.py), so warm both up.
    api_client.post(
        "/api/choices/", {"question": 1, "choice_text": "w"}, format="json", **headers
    )
    # question lookup, then savepoint, insert, outbox insert, release
    with django_assert_num_queries(5):
        api_client.post(
            "/api/choices/",
            {"question": 1, "choice_text": "x"},
            format="json",
            **headers,
        )
