#!/usr/bin/env bash
# The API documents tenants generate clients from (docs/openapi/*.json).
#   scripts/openapi.sh            check: the served documents equal the committed ones, both lint with 0 errors,
#                                 and the TypeScript (openapi-typescript) and C# (NSwag) clients generated from them build
#   scripts/openapi.sh --update   first rewrite docs/openapi/*.json from the services as they are now, then check;
#                                 commit the rewritten files (after a merge that added or changed routes, for instance)
# Both run the tests through ./test.sh: OpenApiDocumentTests (each service) and OpenApiClientTests (TestSupport.Tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-}" in
  --update)
    # The services' drift tests write the served document instead of comparing when this is set.
    NEWSLETTER_UPDATE_OPENAPI=1 NEWSLETTER_SKIP_RUN_CHECK=1 ./test.sh --filter "FullyQualifiedName~OpenApiDocumentTests"
    git --no-pager diff --stat -- docs/openapi
    NEWSLETTER_SKIP_RUN_CHECK=1 ./test.sh --filter "FullyQualifiedName~OpenApiClientTests"
    ;;
  "")
    NEWSLETTER_SKIP_RUN_CHECK=1 ./test.sh --filter "FullyQualifiedName~OpenApiDocumentTests|FullyQualifiedName~OpenApiClientTests"
    ;;
  *)
    echo "usage: scripts/openapi.sh [--update]" >&2
    exit 2
    ;;
esac
