"""
The Docker Engine API's image routes: a project's images listed,
inspected and pulled (``csvc.compute.images``), and prunes that remove
nothing.
"""

import json

from twisted.internet.defer import inlineCallbacks

from csvc.api.docker.app import DockerError, DockerRoutes, app, docker_endpoint, qstr
from csvc.api.docker.filters import prune_filters_any
from csvc.api.schemas import BadRequest


class ImageRoutes(DockerRoutes):
    """
    ``/images/...`` and ``/build/prune``.
    """

    def _images(self, identity):
        # The project's images and the public ones (csvc.compute.images).
        return self._project_images.list(identity)

    @app.route("/images/json", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def images(self, request, identity):
        listed = yield self._images(identity)
        return 200, listed

    @app.route("/images/<path:name>/json", methods=["GET"])
    @docker_endpoint()
    @inlineCallbacks
    def image_inspect(self, request, identity, name):
        found = yield self._project_images.inspect(identity, name)
        if found is None:
            raise DockerError(404, f"No such image: {name}")
        return 200, found

    @app.route("/images/create", methods=["POST"])
    @docker_endpoint()
    @inlineCallbacks
    def image_pull(self, request, identity):
        image = qstr(request, "fromImage")
        if not image:
            raise BadRequest("fromImage is required")
        tag = qstr(request, "tag")
        if tag and "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
            image = f"{image}:{tag}"
        yield self._registries.check_pull(image)
        done = self._project_images.admit_pull(identity.project_id)
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/json")
        request._csvc_streaming = True
        request.write(json.dumps({"status": f"Pulling from {image} on csvc's instances"}).encode() + b"\r\n")
        try:
            result = yield self._project_images.pull(identity, image)
            request.write(json.dumps({"status": f"Status: Image is up to date for {image}", "id": result}).encode() + b"\r\n")
        except Exception as exc:
            message = str(exc) or exc.__class__.__name__
            request.write(json.dumps({"errorDetail": {"message": message}, "error": message}).encode() + b"\r\n")
        finally:
            done()
        return b""

    @app.route("/images/prune", methods=["POST"])
    @docker_endpoint()
    def image_prune(self, request, identity):
        """
        Images are the instances', shared between projects: a tenant's prune
        removes none (``docker system prune`` asks for this).
        """
        prune_filters_any(qstr(request, "filters"))
        return 200, {"ImagesDeleted": [], "SpaceReclaimed": 0}

    @app.route("/build/prune", methods=["POST"])
    @docker_endpoint()
    def build_prune(self, request, identity):
        """
        csvc builds no images, so it keeps no build cache.
        """
        prune_filters_any(qstr(request, "filters"))
        return 200, {"CachesDeleted": [], "SpaceReclaimed": 0}
