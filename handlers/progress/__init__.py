"""Implementation progress: the Ketua RT's /progres reports and the officer's /verifikasi_progres."""
