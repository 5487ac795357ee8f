"""The data the views migrations carry over, on both backends: 0009 keeps each viewer
key's first 32 hex digits and fills app_daily_viewers from app_views; 0010 sets the purge
mark when rollups reach past the oldest raw view (a purge happened before it existed)."""

from __future__ import annotations

from sqlalchemy import inspect, text

from stich.db import migrate
from stich.db.engine import create_engine_for

APP = "01930000-0000-7000-8000-000000000001"
KEY_A, KEY_B = "a" * 32 + "1" * 32, "b" * 32 + "2" * 32
NOV_1, NOV_2 = 1_761_955_200, 1_762_041_600  # 2025-11-01 and 2025-11-02, 00:00 UTC


def test_views_data_survives_0009_and_0010(empty_database_url: str) -> None:
    url = empty_database_url
    migrate.upgrade(url, "0008")
    engine = create_engine_for(url, foreign_keys=False)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":  # no app row: skip the foreign keys
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            views = [  # viewer A twice on Nov 1 (two windows), then on Nov 2; B once
                (KEY_A, NOV_1 + 600, "2025-11-01 00:10:00"),
                (KEY_A, NOV_1 + 7200, "2025-11-01 02:00:00"),
                (KEY_A, NOV_2 + 600, "2025-11-02 00:10:00"),
                (KEY_B, NOV_2 + 600, "2025-11-02 00:11:00"),
            ]
            for key, window, at in views:
                conn.execute(
                    text(
                        "INSERT INTO app_views (app_id, viewer_key, window_start, "
                        "device_type, viewed_at) VALUES (:app, :key, :window, 'desktop', :at)"
                    ),
                    {"app": APP, "key": key, "window": window, "at": at},
                )
            # A rollup older than every raw view: history a purge left behind.
            conn.execute(
                text(
                    "INSERT INTO app_daily_stats (app_id, day, views, unique_viewers, stars) "
                    "VALUES (:app, '2025-10-01', 5, 5, 0)"
                ),
                {"app": APP},
            )

        migrate.upgrade(url)

        with engine.connect() as conn:
            keys = conn.execute(text("SELECT DISTINCT viewer_key FROM app_views")).scalars()
            assert sorted(keys) == [KEY_A[:32], KEY_B[:32]]
            daily = conn.execute(
                text("SELECT day, viewer_key FROM app_daily_viewers ORDER BY 1, 2")
            ).all()
            assert [(str(day), key) for day, key in daily] == [
                ("2025-11-01", KEY_A[:32]),
                ("2025-11-02", KEY_A[:32]),
                ("2025-11-02", KEY_B[:32]),
            ]
            mark = conn.execute(text("SELECT purged_before FROM view_purge_marks")).scalar()
            assert str(mark) == "2025-11-01"
        assert "user_id" not in {c["name"] for c in inspect(engine).get_columns("app_views")}
        assert migrate.check(url) is None
    finally:
        engine.dispose()
