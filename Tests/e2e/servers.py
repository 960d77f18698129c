"""Throwaway servers for the connector tests: real MariaDB and OpenLDAP processes on loopback."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30, process=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class MariaDB:
    """mariadb-install-db + mariadbd on 127.0.0.1, a database `scim` and a user `agent`."""

    USER, PASSWORD, DATABASE = "agent", "agent-pw", "scim"

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="mariadb-"))
        self.datadir = self.dir / "data"
        self.socket = self.dir / "sock"
        self.port = free_port()
        self.process = None
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        self.start()
        self.root_sql(f"CREATE DATABASE {self.DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
                      f"CREATE USER '{self.USER}'@'%' IDENTIFIED BY '{self.PASSWORD}';"
                      f"GRANT ALL ON {self.DATABASE}.* TO '{self.USER}'@'%';")

    def start(self):
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}", f"--port={self.port}",
             "--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve", "--innodb-buffer-pool-size=128M",
             "--innodb-flush-log-at-trx-commit=1", f"--log-error={self.dir / 'error.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, process=self.process)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def root_sql(self, sql):
        import pymysql
        conn = pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
        try:
            with conn.cursor() as c:
                c.execute(sql)
        finally:
            conn.close()

    def connect(self):
        import pymysql
        return pymysql.connect(host="127.0.0.1", port=self.port, user=self.USER, password=self.PASSWORD,
                               database=self.DATABASE, autocommit=True)

    def query(self, sql, *params):
        conn = self.connect()
        try:
            with conn.cursor() as c:
                c.execute(sql, params)
                return c.fetchall()
        finally:
            conn.close()

    def settings(self, **extra):
        return {"host": "127.0.0.1", "port": self.port, "user": self.USER, "password": self.PASSWORD,
                "database": self.DATABASE, "poolSize": 4, **extra}
