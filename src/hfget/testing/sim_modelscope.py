"""The ModelScope protocol (DESIGN §4), as a mixin of the simulator's request handler: file listings, file
downloads (large files redirected to the CDN origin), users/me; ModelScope's own commit ids."""

from __future__ import annotations

import hashlib

from .simrepo import tree_entries


class ModelScopeRoutes:
    def _ms_error(self, status: int, message: str) -> None:
        self._json({"Code": 10010205001, "Message": message, "RequestId": "sim", "Success": False}, status)

    def _modelscope(self, ms_id: str, rest: list[str]) -> None:
        """`/api/v1/models/{owner}/{name}[/repo/files | /repo | /revisions]`, for repos published on ModelScope."""
        repo = self.sim._ms_repo(ms_id)
        token = self.headers.get("Authorization", "")[7:] or _cookie(self.headers.get("Cookie", ""), "m_session_id")
        user = self.sim.users.get(token) if token else None
        if repo is None or (repo.private and user is None):
            return self._ms_error(404, f"model {ms_id} not found")
        if not rest:
            return self._json({"Code": 200, "Data": {"Path": ms_id.split("/")[0], "Name": ms_id.split("/")[1],
                                                     "Revision": "master"}, "Success": True})
        revision = self.query.get("Revision") or "master"
        commit = repo.resolve("main" if revision == "master" else revision)
        if commit is None:
            return self._ms_error(404, f"revision {revision} not found")
        files = repo.commits[commit]
        ms_commit = modelscope_commit(commit)
        if rest == ["revisions"]:
            branches = [{"Revision": "master", "CommitId": modelscope_commit(repo.refs["main"])}]
            return self._json({"Code": 200, "Data": {"RevisionMap": {"Branches": branches, "Tags": []}},
                               "Success": True})
        if rest == ["repo", "files"]:
            root = self.query.get("Root", "").strip("/")
            recursive = self.query.get("Recursive", "").lower() == "true"
            entries = tree_entries(files, root, recursive)
            if entries is None:
                return self._ms_error(404, f"{root} not found")
            out = []
            for e in entries:
                f = files.get(e["path"])
                entry = {"Name": e["path"].split("/")[-1], "Path": e["path"], "Type": "tree" if f is None else "blob",
                         "Size": 0 if f is None else f.size, "Revision": ms_commit, "CommittedDate": 1767225600,
                         "Mode": "40000" if f is None else "100644"}
                if f is not None:
                    entry.update(Sha256=f.content.sha256, IsLFS=f.lfs)
                out.append(entry)
            return self._json({"Code": 200, "Data": {"Files": out[: self.sim.modelscope_listing_cap]},
                               "Message": "success", "Success": True})
        if rest == ["repo"]:
            path = self.query.get("FilePath", "")
            f = files.get(path)
            if f is None:
                return self._ms_error(404, f"file {path} not found")
            if self._status_fault(path, "modelscope"):
                return
            if f.lfs:  # large files come from the CDN origin, as on modelscope.cn (OSS)
                sha = f.content.sha256
                location = self.sim.cdn_link(sha, self.headers.get("Range"))
                return self._send(302, {"Location": location})
            return self._serve_body(f, path, "modelscope", {"ETag": f'"{f.content.sha256}"'})
        self._ms_error(404, "not found")

    def _modelscope_whoami(self) -> None:
        """ModelScope's `GET /openapi/v1/users/me` (Bearer token), in its `{success, data}` envelope."""
        user = self._user()
        if not user:
            return self._json({"success": False, "code": "E3001", "message": "Invalid or missing API token"}, 401)
        self._json({"success": True, "data": {"username": user.name, "name": user.name, "email": f"{user.name}@sim"}})


def modelscope_commit(hf_commit: str) -> str:
    """ModelScope mirrors a repo into its own git history: same files, other commit ids."""
    return hashlib.sha1(f"modelscope:{hf_commit}".encode()).hexdigest()


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""
