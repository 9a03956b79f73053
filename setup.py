from setuptools import find_packages, setup

setup(
    name="umlpy",
    version="0.1.0",
    description="A user-mode Linux kernel written in Python: real Linux programs under a ptrace supervisor",
    packages=find_packages(include=["umlpy", "umlpy.*"]),
    package_data={"umlpy.bench": ["guest/*.c", "guest/*.h"]},
    python_requires=">=3.10",
    install_requires=["cffi>=1.15", "python-ptrace>=0.9", "psutil>=5.9", "google-crc32c>=1.5"],
    extras_require={"test": ["pytest>=7", "pytest-timeout", "hypothesis", "pexpect", "coverage"], "bench": ["matplotlib"]},
    cffi_modules=["csrc/build_accel.py:ffibuilder"],
    entry_points={"console_scripts": [
        "umlpy=umlpy.cli:main",
        "umlpy-mkcow=umlpy.block.toolmain:mkcow_main",
        "umlpy-moo=umlpy.block.toolmain:moo_main",
        "umlpy-mconsole=umlpy.drivers.mconsole_client:main",
        "umlpy-mkimage=umlpy.images:main",
    ]},
    zip_safe=False,
)
