"""The token issuer: password login to an RS256 JWT, and the JWKS that verifies it."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
)
from rest_framework.response import Response

from strangler.api.errors import error_body
from strangler.auth.keys import load_public_key, public_jwk
from strangler.auth.tokens import issue_token


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


@extend_schema(
    request=TokenRequestSerializer,
    responses=inline_serializer(
        "TokenResponse",
        {
            "access": serializers.CharField(),
            "token_type": serializers.CharField(),
            "expires_in": serializers.IntegerField(),
        },
    ),
)
@api_view(["POST"])
@authentication_classes([])
@permission_classes([])
def token(request):
    """Exchange a username and password for a signed access token."""
    data = TokenRequestSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    user = authenticate(
        request,
        username=data.validated_data["username"],
        password=data.validated_data["password"],
    )
    if user is None:
        # No authenticator runs on this view, so DRF would answer an AuthenticationFailed
        # with 403; a failed login is a 401 with the Bearer challenge.
        return Response(
            error_body("bad_credentials", "Username or password is wrong."),
            status=status.HTTP_401_UNAUTHORIZED,
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    return Response(issue_token(user.pk), status=status.HTTP_200_OK)


def jwks(request):
    """The public key as a JSON Web Key Set, so services verify tokens on their own."""
    public_key = load_public_key(settings.STRANGLER_JWT["PUBLIC_KEY_FILE"])
    response = JsonResponse({"keys": [public_jwk(public_key)]})
    response["Cache-Control"] = "public, max-age=300"
    return response
