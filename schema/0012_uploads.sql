-- Uploads (issue 9): the check that a message's media names one of this server's uploads,
-- of the family its media_type claims. chatd_message_send() (owned elsewhere) calls it.
--
-- chatd_upload_media_ok(media_url, media_type):
--   true when media_url is exactly "/api/v1/upload/<name>" (the url POST /api/v1/upload
--   answers, nothing before or after it) and <name> is a stored upload, and
--   media_type is NULL (no claim: any stored upload will do) or the family of the stored
--   content_type ('image' for image/png, 'video' for video/mp4, ...).
--   false otherwise, NULL media_url included.
CREATE OR REPLACE FUNCTION chatd_upload_media_ok(p_media_url text, p_media_type text)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT p_media_url IS NOT NULL AND EXISTS (
        SELECT 1 FROM uploads up
        WHERE up.filename = substring(p_media_url from '^/api/v1/upload/([A-Za-z0-9._-]{1,100})$')
          AND (p_media_type IS NULL OR split_part(up.content_type, '/', 1) = p_media_type))
$$;
