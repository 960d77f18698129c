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


def make_ca_and_server_cert(directory: Path, name: str):
    """A throwaway CA (`{name}-ca.pem`) and a server certificate for 127.0.0.1 it signed
    (`{name}.pem`, `{name}.key`)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ca_key, ca, key, csr, cert = (directory / f"{name}{suffix}" for suffix in ("-ca.key", "-ca.pem", ".key", ".csr", ".pem"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-subj", f"/CN={name} test CA", "-days", "2")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


class MariaDB:
    """mariadb-install-db + mariadbd on 127.0.0.1, a database `scim` and a user `agent`.
    The server offers TLS with a certificate for 127.0.0.1 from its own CA (`self.ca`)."""

    USER, PASSWORD, DATABASE = "agent", "agent-pw", "scim"

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="mariadb-"))
        self.datadir = self.dir / "data"
        self.socket = self.dir / "sock"
        self.port = free_port()
        self.process = None
        self.ca, self.cert, self.key = make_ca_and_server_cert(self.dir, "mariadb")
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
             "--innodb-flush-log-at-trx-commit=1", f"--log-error={self.dir / 'error.log'}",
             f"--ssl-ca={self.ca}", f"--ssl-cert={self.cert}", f"--ssl-key={self.key}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, process=self.process)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def empty_database(self, then=""):
        """Drops and recreates the `scim` database, then runs `then` (more SQL) as root."""
        self.root_sql(f"DROP DATABASE IF EXISTS {self.DATABASE}; CREATE DATABASE {self.DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;" + then)

    def root_sql(self, sql):
        """Runs SQL as root; the rows of its (first) result."""
        import pymysql
        conn = pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
        try:
            with conn.cursor() as c:
                c.execute(sql)
                return c.fetchall()
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


class Slapd:
    """OpenLDAP slapd with back_mdb on 127.0.0.1, suffix dc=example,dc=org, ou=people and ou=groups."""

    SUFFIX, ADMIN, PASSWORD = "dc=example,dc=org", "cn=admin,dc=example,dc=org", "admin-pw"
    PEOPLE, GROUPS = "ou=people,dc=example,dc=org", "ou=groups,dc=example,dc=org"

    def __init__(self, maxsize=256 << 20):
        """`maxsize`: the bytes the mdb database may grow to (its map size)."""
        self.dir = Path(tempfile.mkdtemp(prefix="slapd-"))
        (self.dir / "db").mkdir()
        self.port = free_port()
        self.conf = self.dir / "slapd.conf"
        self.conf.write_text(f"""
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {self.dir}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "{self.SUFFIX}"
rootdn "{self.ADMIN}"
rootpw {self.PASSWORD}
directory {self.dir}/db
maxsize {maxsize}
index objectClass eq
index uid,cn,mail eq,sub
index entryUUID eq
index member eq
""")
        self.process = None
        self.start()
        conn = self.connect()
        conn.add(self.SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
        conn.add(self.PEOPLE, ["organizationalUnit"], {"ou": "people"})
        conn.add(self.GROUPS, ["organizationalUnit"], {"ou": "groups"})
        conn.unbind()

    def start(self):
        self.process = subprocess.Popen(
            ["slapd", "-f", str(self.conf), "-h", f"ldap://127.0.0.1:{self.port}/", "-d", "0"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "slapd.log", "ab"))
        wait_port(self.port, process=self.process)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def connect(self):
        import ldap3
        return ldap3.Connection(ldap3.Server(f"ldap://127.0.0.1:{self.port}"), self.ADMIN, self.PASSWORD, auto_bind=True)

    def bulk_add(self, ldif: str):
        """Adds many entries at once with slapadd, slapd stopped meanwhile (adds over LDAP
        wait for a disk sync each: about 200 a second)."""
        path = self.dir / "bulk.ldif"
        path.write_text(ldif)
        self.stop()
        subprocess.run(["slapadd", "-q", "-f", str(self.conf), "-l", str(path)], check=True, capture_output=True)
        self.start()

    def search(self, base, flt, attributes=("*", "+"), scope="SUBTREE"):
        import ldap3
        conn = self.connect()
        try:
            conn.search(base, flt, search_scope=getattr(ldap3, scope), attributes=list(attributes))
            return conn.entries
        finally:
            conn.unbind()

    def settings(self, **extra):
        return {"url": f"ldap://127.0.0.1:{self.port}", "bindDN": self.ADMIN, "bindPassword": self.PASSWORD,
                "usersDN": self.PEOPLE, "groupsDN": self.GROUPS, "poolSize": 4, **extra}


class ScimPeer:
    """A real remote SCIM server: PyPI scim2-server, on loopback, with a bearer token."""

    TOKEN = "peer-token"

    def __init__(self, port=None, spc=None, resource_types=None):
        import sys as _sys
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="scimpeer-"))
        cmd = [str(Path(_sys.executable).parent / "scim2-server"), "--port", str(self.port), "--bearer-token", self.TOKEN]
        if spc is not None:
            (self.dir / "spc.json").write_text(__import__("json").dumps(spc))
            cmd += ["--service-provider-config", str(self.dir / "spc.json")]
        if resource_types is not None:
            (self.dir / "rt.json").write_text(__import__("json").dumps(resource_types))
            cmd += ["--resource-type", str(self.dir / "rt.json")]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.dir / "peer.log", "ab"))
        wait_port(self.port, process=self.process)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}/v2"

    def get(self, path, **kw):
        import requests
        return requests.get(self.base + path, headers={"Authorization": f"Bearer {self.TOKEN}"}, **kw)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)


class Tinyproxy:
    """Debian's tinyproxy on 127.0.0.1 as the corporate HTTP proxy: CONNECT only to `connect_port`,
    with basic credentials `user:password`."""
    USER, PASSWORD = "agent", "proxy-pass"

    def __init__(self, directory: Path, connect_port: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = directory / "tinyproxy.log"
        conf = directory / "tinyproxy.conf"
        conf.write_text(
            f"Port {self.port}\nListen 127.0.0.1\nTimeout 600\nAllow 127.0.0.1\nConnectPort {connect_port}\n"
            f"BasicAuth {self.USER} {self.PASSWORD}\nLogLevel Connect\nLogFile \"{self.log}\"\nMaxClients 100\n")
        self.process = subprocess.Popen(["tinyproxy", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, process=self.process)

    @property
    def url(self):
        return f"http://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
