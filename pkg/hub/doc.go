// Package hub is a Hugging Face Hub client whose cache is shared with
// Python's huggingface_hub: a model downloaded by mlx_lm is found here, and
// the reverse.
//
// Cache layout (identical to huggingface_hub):
//
//	$HF_HUB_CACHE/                       (default $HF_HOME/hub, ~/.cache/huggingface/hub)
//	  CACHEDIR.TAG
//	  .locks/models--org--name/<etag>.lock
//	  models--org--name/
//	    refs/<revision>                  commit hash of a branch or tag, no newline
//	    blobs/<etag>                     content: sha256 for LFS files, git blob sha1 otherwise
//	    blobs/<etag>.incomplete          partial download, resumed with HTTP Range
//	    snapshots/<commit>/<path>        relative symlink to ../../blobs/<etag>
//	    trees/<commit>.json              file listing of the commit (huggingface_hub's tree cache)
//
// The entry points other packages use are ResolveModel (a local directory as
// is, else a snapshot download with mlx_lm's allow patterns), Client.Snapshot,
// Client.DownloadFile, ScanCache / DeleteCachedRepo for `manage`, and
// Client.UploadModel (mlx_lm's upload_to_hub: model card, create repo, upload)
// with Client.CreateRepo / Client.UploadFolder / Client.CreateCommit below it
// for `--upload-repo`.
//
// Environment: HF_ENDPOINT, HF_TOKEN (else HF_TOKEN_PATH, else $HF_HOME/token),
// HF_HUB_OFFLINE, HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HF_HUB_DOWNLOAD_TIMEOUT.
package hub
