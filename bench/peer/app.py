"""The FastAPI peer of bench/run (issue 10, goal 7): never part of chatd.

FastAPI + SQLAlchemy async (asyncpg) + PyJWT, served by uvicorn with 2
workers, doing what chatd's two hottest routes do, the way such an app is
usually written (one ORM session per request, pydantic response models):

  GET  /api/v1/users/me   the Bearer access token (or the access_token cookie)
                          decoded with chatd's SECRET_KEY, audience and type;
                          the user row and its login session checked (as
                          chatd_session_ok); UserRead.
  POST /api/v1/messages   the same validation and statuses as API.md, the
                          receiver (or group membership, or media_url) checked,
                          INSERT into the same messages table, commit, re-read,
                          201 MessageRead. No publish: a peer without realtime.

Same database, same role, same Postgres settings (fsync, synchronous_commit)
as chat-fcgi: DATABASE_URL and SECRET_KEY come from the stack bench/run
started. PUBLIC_URL as chatd's (media_url may be absolute under it).
"""

import asyncio
import datetime
import os
import uuid
from typing import Literal, Optional

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, constr, root_validator
from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey,
                        Identity, String, Text, exists, func, or_, select)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import declarative_base, sessionmaker

DATABASE_URL = os.environ["DATABASE_URL"].replace(
    "postgresql://", "postgresql+asyncpg://", 1)
SECRET_KEY = os.environ["SECRET_KEY"]
PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
AUDIENCE = "fastapi-users:auth"

# A fixed pool of 10 connections per worker: with SQLAlchemy's default
# overflow, each connection above pool_size is closed when it is returned, so
# under 64 clients most requests paid a new connection (asyncpg's connect and
# type introspection: ~30 CPU ms a request). jit off: that introspection query
# is one the JIT compiles for hundreds of ms (asyncpg's FAQ); the requests' own
# queries are far below jit_above_cost either way.
engine = create_async_engine(DATABASE_URL, pool_size=10, max_overflow=0,
                             connect_args={"server_settings": {"jit": "off"}})
Session = sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
Base = declarative_base()


class User(Base):
    __tablename__ = "users"
    id = Column(UUID(as_uuid=True), primary_key=True)
    email = Column(String(320), nullable=False)
    username = Column(String(50), nullable=False)
    first_name = Column(String(100))
    last_name = Column(String(100))
    avatar_url = Column(String(500))
    bio = Column(String(500))
    is_active = Column(Boolean, nullable=False)
    is_superuser = Column(Boolean, nullable=False)
    is_online = Column(Boolean, nullable=False)
    last_seen = Column(DateTime(timezone=True))
    sessions_revoked_at = Column(DateTime(timezone=True))


class AuthSession(Base):
    __tablename__ = "auth_sessions"
    id = Column(UUID(as_uuid=True), primary_key=True)
    user_id = Column(UUID(as_uuid=True), ForeignKey("users.id"))
    revoked_at = Column(DateTime(timezone=True))


class GroupMember(Base):
    __tablename__ = "group_members"
    id = Column(UUID(as_uuid=True), primary_key=True)
    group_id = Column(UUID(as_uuid=True), nullable=False)
    user_id = Column(UUID(as_uuid=True), nullable=False)


class Upload(Base):
    __tablename__ = "uploads"
    id = Column(UUID(as_uuid=True), primary_key=True)
    filename = Column(String(100), nullable=False)


class MessageReadMark(Base):
    __tablename__ = "message_reads"
    message_id = Column(UUID(as_uuid=True), primary_key=True)
    user_id = Column(UUID(as_uuid=True), primary_key=True)


class Message(Base):
    __tablename__ = "messages"
    id = Column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    seq = Column(BigInteger, Identity(always=True))
    content = Column(Text, nullable=False)
    sender_id = Column(UUID(as_uuid=True), ForeignKey("users.id"), nullable=False)
    receiver_id = Column(UUID(as_uuid=True), ForeignKey("users.id"))
    group_id = Column(UUID(as_uuid=True))
    media_url = Column(String(500))
    media_type = Column(String(20))
    is_read = Column(Boolean, nullable=False, server_default="false")
    created_at = Column(DateTime(timezone=True), server_default=func.now())
    edited_at = Column(DateTime(timezone=True))
    deleted_at = Column(DateTime(timezone=True))


def iso(t: Optional[datetime.datetime]) -> Optional[str]:
    """chatd_ts(): UTC, microseconds, Z."""
    if t is None:
        return None
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Out(BaseModel):
    class Config:
        orm_mode = True
        json_encoders = {datetime.datetime: iso}


class UserRead(Out):
    id: uuid.UUID
    email: Optional[str]
    username: str
    first_name: Optional[str]
    last_name: Optional[str]
    avatar_url: Optional[str]
    bio: Optional[str]
    is_online: bool
    last_seen: Optional[datetime.datetime]
    is_superuser: bool


class MessageRead(Out):
    id: uuid.UUID
    seq: int
    content: str
    sender_id: uuid.UUID
    receiver_id: Optional[uuid.UUID]
    group_id: Optional[uuid.UUID]
    media_url: Optional[str]
    media_type: Optional[str]
    is_read: bool
    created_at: datetime.datetime
    edited_at: Optional[datetime.datetime]
    is_deleted: bool
    sender: UserRead


class MessageCreate(BaseModel):
    content: constr(min_length=1, max_length=5000)
    receiver_id: Optional[uuid.UUID] = None
    group_id: Optional[uuid.UUID] = None
    media_url: Optional[constr(min_length=1, max_length=500)] = None
    media_type: Optional[Literal["image", "video"]] = None

    @root_validator(skip_on_failure=True)
    def one_target(cls, v):
        if v.get("receiver_id") and v.get("group_id"):
            raise ValueError("Provide receiver_id or group_id, not both")
        return v


app = FastAPI(title="chatd bench peer")


@app.on_event("startup")
async def fill_pool():
    """Opens the whole pool before the first request, each connection with the
    types of the requests introspected, so a short warm-up measures the
    steady state: on a loaded machine a lazily filled pool was still paying
    connection setup (8 CPU ms a request instead of 1) in the measured run."""
    async def one():
        async with engine.connect() as c:
            await c.execute(select(User.id, func.to_timestamp(0) > User.last_seen,
                                   User.username == "").where(User.id == uuid.uuid4()))
            await c.execute(select(exists().where(AuthSession.id == uuid.uuid4())))

    conns = [one() for _ in range(engine.pool.size())]
    await asyncio.gather(*conns)


async def db():
    async with Session() as s:
        yield s


def deny(status: int, detail: str):
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status_code=status, detail=detail, headers=headers)


def claims(token: Optional[str]) -> Optional[dict]:
    try:
        c = jwt.decode(token, SECRET_KEY, algorithms=["HS256"], audience=AUDIENCE,
                       leeway=10, options={"require": ["sub", "exp", "iat"]})
        uuid.UUID(c["sub"])
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    return c if c.get("type") == "access" else None


async def current_user(request: Request, s: AsyncSession = Depends(db)) -> User:
    """chatd's auth_require: header, else cookie; user, active, session still good."""
    h = request.headers.get("authorization", "")
    token = h[7:] if h[:7].lower() == "bearer " and h[7:] else None
    cookie = request.cookies.get("access_token")
    if not token and not cookie:
        raise deny(401, "Missing or invalid authorization")
    c = claims(token) if token else None
    if c is None and cookie:
        c = claims(cookie)
    if c is None:
        raise deny(401, "Invalid or expired token")
    sid = c.get("sid") or ""
    try:
        sid = uuid.UUID(sid)
        ok = exists().where(AuthSession.id == sid, AuthSession.user_id == User.id,
                            AuthSession.revoked_at.is_(None))
    except ValueError:
        ok = or_(User.sessions_revoked_at.is_(None),
                 User.sessions_revoked_at <= func.to_timestamp(int(c["iat"])))
    row = (await s.execute(select(User, ok.label("ok"))
                           .where(User.id == uuid.UUID(c["sub"])))).first()
    if row is None:
        raise deny(401, "User not found")
    if not row.User.is_active:
        raise deny(403, "User account is inactive")
    if not row.ok:
        raise deny(401, "Invalid or expired token")
    return row.User


@app.get("/api/v1/users/me", response_model=UserRead)
async def users_me(user: User = Depends(current_user)):
    return user


async def media_ok(s: AsyncSession, url: str, media_type: Optional[str]) -> Optional[str]:
    """The media_url rules of chatd_message_send; None when good, else the detail."""
    path = url if url.startswith("/") else (
        url[len(PUBLIC_URL):] if PUBLIC_URL and url.startswith(PUBLIC_URL + "/") else None)
    prefix = "/api/v1/upload/"
    name = path[len(prefix):] if path and path.startswith(prefix) else ""
    if not name or not all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in name) or \
            not await s.scalar(select(exists().where(Upload.filename == name))):
        return "media_url must be a file uploaded to this server"
    if not await s.scalar(select(func.chatd_upload_media_ok(path, media_type))):
        return "media_type does not match the uploaded file"
    return None


async def check_target(s: AsyncSession, user: User, body: MessageCreate):
    if body.receiver_id:
        if not await s.scalar(select(exists().where(User.id == body.receiver_id,
                                                    User.is_active))):
            raise deny(404, "User not found")
    elif not await s.scalar(select(exists().where(GroupMember.group_id == body.group_id,
                                                  GroupMember.user_id == user.id))):
        raise deny(403, "You are not a member of this group")
    if body.media_url is not None:
        detail = await media_ok(s, body.media_url, body.media_type)
        if detail:
            raise HTTPException(status_code=422, detail=[{
                "type": "value_error", "loc": ["body", "media_url"], "msg": detail,
                "input": body.media_url}])


@app.post("/api/v1/messages", response_model=MessageRead, status_code=201)
async def send_message(body: MessageCreate, user: User = Depends(current_user),
                       s: AsyncSession = Depends(db)):
    if not body.receiver_id and not body.group_id:
        raise deny(400, "Either receiver_id or group_id must be provided")
    await check_target(s, user, body)
    m = Message(content=body.content, sender_id=user.id, receiver_id=body.receiver_id,
                group_id=body.group_id, media_url=body.media_url, media_type=body.media_type)
    s.add(m)
    await s.commit()
    await s.refresh(m)
    is_read = m.is_read
    if m.group_id is not None:
        is_read = await s.scalar(select(exists().where(
            MessageReadMark.message_id == m.id, MessageReadMark.user_id == user.id)))
    return MessageRead(id=m.id, seq=m.seq, content=m.content, sender_id=m.sender_id,
                       receiver_id=m.receiver_id, group_id=m.group_id,
                       media_url=m.media_url, media_type=m.media_type, is_read=is_read,
                       created_at=m.created_at, edited_at=m.edited_at,
                       is_deleted=m.deleted_at is not None,
                       sender=UserRead.from_orm(user))
